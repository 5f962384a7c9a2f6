//! The dashboard's look and its little script, inline in every page (no external
//! assets: the server may have no internet and neither may its users).

pub const CSS: &str = r#"
:root {
  --ink: #1c2330; --ink-2: #444c5a; --muted: #6b7382; --faint: #9aa1ad;
  --line: #e4e7ec; --line-2: #eef0f3; --bg: #f5f6f8; --card: #ffffff;
  --accent: #3867a8; --accent-2: #e8eef7;
  --bad: #b4442f; --bad-bg: #fbeee9; --good: #2e7a4e; --good-bg: #e9f5ee;
  --warn: #9a6400; --warn-bg: #fdf4e2; --spike: #f8e7c4;
  font-family: -apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", "Liberation Sans", sans-serif;
  font-size: 14px; line-height: 1.45; color: var(--ink); background: var(--bg);
}
* { box-sizing: border-box; }
body { margin: 0; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; font-size: 12.5px; }
.num, table.t td.num, table.t th.num, table.bd td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.tnum { font-variant-numeric: tabular-nums; }
.muted { color: var(--muted); }
.faint { color: var(--faint); }
.wrap { max-width: 1320px; margin: 0 auto; padding: 0 24px; }

/* header and navigation */
header.top { background: #17202e; color: #e9edf3; }
/* The header wraps instead of overflowing: on a narrow window the tabs take the room
   left between the brand and the key/logout and break into rows, never off-screen. */
header.top .wrap { display: flex; flex-wrap: wrap; align-items: center; column-gap: 28px; min-height: 52px; }
.brand { font-weight: 700; font-size: 16px; letter-spacing: .2px; color: #fff; display: flex; align-items: center; gap: 8px; }
.brand:hover { text-decoration: none; }
.brand .flame { width: 10px; height: 10px; border-radius: 50%; background: linear-gradient(135deg, #f4a340, #d9543a); display: inline-block; }
nav.tabs { display: flex; flex-wrap: wrap; gap: 0 2px; flex: 1 1 0; min-width: 0; align-self: stretch; }
nav.tabs a { color: #b8c1cf; padding: 0 12px; display: flex; align-items: center; border-bottom: 2px solid transparent; min-height: 52px; white-space: nowrap; }
nav.tabs a:hover { color: #fff; text-decoration: none; }
nav.tabs a.on { color: #fff; border-bottom-color: #f4a340; }
header.top form { margin: 0; }
.linkbtn { background: none; border: 0; color: #b8c1cf; cursor: pointer; font: inherit; padding: 4px 0; white-space: nowrap; }
.linkbtn:hover { color: #fff; text-decoration: underline; }
.who { color: #8e99a9; font-size: 12.5px; white-space: nowrap; }
@media (max-width: 1180px) {
  header.top .wrap { column-gap: 16px; }
  nav.tabs a { min-height: 36px; padding: 0 8px; }
}

/* filter bar */
.filters { background: var(--card); border-bottom: 1px solid var(--line); }
.filters form { display: flex; flex-wrap: wrap; align-items: flex-end; gap: 10px 10px; padding: 12px 0 10px; margin: 0; }
.field { display: flex; flex-direction: column; gap: 3px; }
.field > span { font-size: 11px; text-transform: uppercase; letter-spacing: .5px; color: var(--muted); font-weight: 600; }
.field input, .field select { font: inherit; font-size: 13px; height: 30px; padding: 3px 8px; border: 1px solid #cfd4dc; border-radius: 6px; background: #fff; color: var(--ink); min-width: 0; }
.field input[type=text] { width: 112px; }
.field input.time { width: 128px; }
.field input:focus, .field select:focus { outline: 2px solid #bcd0ee; border-color: var(--accent); }
.seg { display: inline-flex; border: 1px solid #cfd4dc; border-radius: 6px; overflow: hidden; height: 30px; }
.seg a { padding: 0 10px; display: flex; align-items: center; color: var(--ink-2); font-size: 13px; border-left: 1px solid #cfd4dc; }
.seg a:first-child { border-left: 0; }
.seg a:hover { background: var(--bg); text-decoration: none; }
.seg a.on { background: var(--accent); color: #fff; }
.seg.mode a.on { background: #17202e; }
.seg.mode a.demo.on { background: #8a5a00; }
.btn { font: inherit; font-size: 13px; height: 30px; padding: 0 14px; border-radius: 6px; border: 1px solid var(--accent); background: var(--accent); color: #fff; cursor: pointer; }
.btn:hover { background: #2f5a95; }
.btn.ghost { background: #fff; color: var(--accent); }
.chips { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; padding: 0 0 10px; font-size: 12.5px; }
.chip { background: var(--accent-2); color: #24497d; border-radius: 999px; padding: 2px 4px 2px 10px; display: inline-flex; gap: 6px; align-items: center; }
.chip a { color: #24497d; border-radius: 50%; width: 18px; height: 18px; display: inline-flex; align-items: center; justify-content: center; }
.chip a:hover { background: #cddcf0; text-decoration: none; }
.fresh { font-size: 12.5px; color: var(--muted); padding: 10px 0 0; display: flex; gap: 16px; flex-wrap: wrap; align-items: center; }
.fresh .dot { width: 7px; height: 7px; border-radius: 50%; display: inline-block; background: var(--good); margin-right: 6px; vertical-align: 1px; }
.fresh .dot.stale { background: var(--warn); }
.fresh label { display: inline-flex; gap: 5px; align-items: center; cursor: pointer; }
.fresh .right { margin-left: auto; }

/* page */
main { padding: 18px 0 48px; }
h1 { font-size: 20px; margin: 6px 0 2px; font-weight: 650; letter-spacing: -.2px; }
h2 { font-size: 15px; margin: 0; font-weight: 650; }
.sub { color: var(--muted); margin: 0 0 16px; font-size: 13px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 16px 18px; margin-bottom: 16px; }
.card-head { display: flex; align-items: baseline; gap: 12px; margin-bottom: 10px; flex-wrap: wrap; }
.card-head .right { margin-left: auto; display: flex; gap: 10px; align-items: center; font-size: 13px; }
.grid { display: grid; gap: 16px; }
.cols-2 { grid-template-columns: 2fr 1fr; }
.halves { grid-template-columns: repeat(2, minmax(0, 1fr)); }
@media (max-width: 1000px) { .halves { grid-template-columns: 1fr; } }
.margin-kpis { display: grid; grid-template-columns: repeat(5, minmax(0, 1fr)); gap: 16px; }
.margin-kpis .big { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
@media (max-width: 1000px) { .cols-2 { grid-template-columns: 1fr; } }

/* KPI cards */
.kpis { display: grid; grid-template-columns: repeat(4, 1fr); gap: 12px; margin-bottom: 16px; }
@media (max-width: 900px) { .kpis { grid-template-columns: repeat(2, 1fr); } }
.kpi { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 12px 16px 12px; }
.kpi .label { font-size: 11.5px; text-transform: uppercase; letter-spacing: .5px; color: var(--muted); font-weight: 600; }
.kpi .value { font-size: 25px; font-weight: 600; font-variant-numeric: tabular-nums; margin: 2px 0 1px; letter-spacing: -.3px; }
.kpi .delta { font-size: 12.5px; font-variant-numeric: tabular-nums; color: var(--muted); }
.kpi.main { border-top: 3px solid #f4a340; padding-top: 10px; }
.d { font-weight: 600; border-radius: 4px; padding: 0 4px; font-variant-numeric: tabular-nums; white-space: nowrap; }
.d.bad { color: var(--bad); background: var(--bad-bg); }
.d.good { color: var(--good); background: var(--good-bg); }
.d.flat { color: var(--muted); }

/* chart */
svg.chart { width: 100%; height: 270px; display: block; overflow: visible; }
svg.chart text { font-size: 11px; fill: var(--muted); font-family: inherit; }
svg.chart .grid { stroke: var(--line-2); stroke-width: 1; }
svg.chart .baseline { stroke: #c4c9d2; stroke-width: 1; }
svg.chart .tick { stroke: #c4c9d2; }
svg.chart .hit { fill: transparent; }
svg.chart .col:hover .hit { fill: rgba(28, 35, 48, .05); }
svg.chart .spike-band { fill: var(--spike); opacity: .75; }
svg.chart .spike-label { fill: var(--warn) !important; font-weight: 700; font-size: 10.5px !important; text-transform: uppercase; letter-spacing: .6px; }
svg.chart a:hover .spike-band { opacity: 1; }
svg.chart .deploy line { stroke: var(--warn); stroke-width: 1.5; stroke-dasharray: 4 3; }
svg.chart .deploy .hit { fill: transparent; }
svg.chart .deploy-label { fill: var(--warn) !important; font-size: 10px !important; font-weight: 600; }
.deploy-notes { margin: 6px 0 0; padding: 0; list-style: none; font-size: 12.5px; }
.deploy-notes li { margin: 2px 0; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 18px; font-size: 12.5px; margin-top: 10px; }
.legend span.sw { width: 10px; height: 10px; border-radius: 2px; display: inline-block; margin-right: 6px; vertical-align: -1px; }
.legend .v { color: var(--muted); font-variant-numeric: tabular-nums; margin-left: 4px; }
.callout { display: flex; gap: 12px; align-items: center; background: var(--warn-bg); border: 1px solid #f0dcb0; color: #5c4300; border-radius: 8px; padding: 9px 14px; margin-bottom: 12px; font-size: 13.5px; }
.callout.info { background: var(--accent-2); border-color: #d3e0f2; color: #23416b; }
.callout .go { margin-left: auto; font-weight: 600; white-space: nowrap; }
.callout b { font-variant-numeric: tabular-nums; }
.tip { position: fixed; z-index: 10; pointer-events: none; background: #17202e; color: #eef1f5; font-size: 12px; line-height: 1.5; padding: 7px 10px; border-radius: 6px; white-space: pre; box-shadow: 0 4px 16px rgba(0,0,0,.18); font-variant-numeric: tabular-nums; }
svg.spark { display: block; }
svg.spark .spark-line { fill: none; stroke: var(--accent); stroke-width: 1.4; }
svg.spark .spark-area { fill: var(--accent-2); }
svg.spark .spark-dot { fill: var(--accent); }

/* tables */
.scroll { overflow-x: auto; }
table.t { width: 100%; border-collapse: collapse; font-size: 13.5px; }
table.t th { text-align: left; font-size: 11px; text-transform: uppercase; letter-spacing: .5px; color: var(--muted); font-weight: 600; padding: 6px 10px; border-bottom: 1px solid var(--line); white-space: nowrap; }
table.t td { padding: 7px 10px; border-bottom: 1px solid var(--line-2); vertical-align: middle; }
table.t tbody tr:hover td { background: #fafbfc; }
table.t tfoot td { font-weight: 600; border-top: 1px solid var(--line); border-bottom: 0; }
table.t td.name { max-width: 320px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
table.t td.links { white-space: nowrap; font-size: 12.5px; text-align: right; }
table.t td.links a + a { margin-left: 10px; }
table.t tr.regress td { background: #fff8f6; }
table.t tr.regress td:first-child { box-shadow: inset 3px 0 0 var(--bad); }
.share { display: flex; align-items: center; gap: 8px; justify-content: flex-end; }
.bar { width: 70px; height: 6px; background: var(--line-2); border-radius: 3px; overflow: hidden; }
.bar i { display: block; height: 100%; background: var(--accent); border-radius: 3px; }
.small { font-size: 12px; margin-top: 1px; }
td.big-delta .d { font-size: 13.5px; }
.badge { display: inline-block; font-size: 11px; font-weight: 600; padding: 1px 7px; border-radius: 999px; background: var(--line-2); color: var(--ink-2); vertical-align: 1px; }
.badge.bad { background: var(--bad-bg); color: var(--bad); }
.badge.warn { background: var(--warn-bg); color: var(--warn); }
.badge.good { background: var(--good-bg); color: var(--good); }
.empty { text-align: center; color: var(--muted); padding: 36px 0; }

/* concentration */
.conc { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)) 2fr; gap: 24px; align-items: center; }
.conc .big { font-size: 26px; font-weight: 600; font-variant-numeric: tabular-nums; }
.stackbar { display: flex; height: 12px; border-radius: 6px; overflow: hidden; background: var(--line-2); margin: 6px 0 8px; }
.stackbar i { display: block; height: 100%; }

/* requests */
.reqs { border: 1px solid var(--line); border-radius: 10px; background: var(--card); overflow: hidden; }
.req-row { display: grid; grid-template-columns: 128px minmax(120px, 1.3fr) minmax(120px, 1.3fr) minmax(100px, 1fr) 130px 70px 86px 100px; gap: 10px; align-items: center; padding: 7px 14px; font-size: 13.5px; }
.req-head { font-size: 11px; text-transform: uppercase; letter-spacing: .5px; color: var(--muted); font-weight: 600; border-bottom: 1px solid var(--line); }
details.req { border-bottom: 1px solid var(--line-2); }
details.req:last-child { border-bottom: 0; }
details.req > summary { list-style: none; cursor: pointer; }
details.req > summary::-webkit-details-marker { display: none; }
details.req > summary:hover { background: #fafbfc; }
details.req[open] > summary { background: #f7f9fc; }
.req-row > span { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.req-body { padding: 6px 14px 16px 152px; display: grid; grid-template-columns: minmax(0, 1.2fr) minmax(0, 1fr); gap: 24px; background: #f7f9fc; }
.req-body h3 { font-size: 11.5px; text-transform: uppercase; letter-spacing: .5px; color: var(--muted); margin: 8px 0 6px; }
dl.kv { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 3px 14px; margin: 0; font-size: 13px; }
dl.kv dt { color: var(--muted); }
dl.kv dd { margin: 0; overflow-wrap: anywhere; }
table.bd { border-collapse: collapse; font-size: 13px; width: 100%; }
table.bd td, table.bd th { padding: 3px 8px; border-bottom: 1px solid var(--line-2); }
table.bd th { font-size: 11px; color: var(--muted); font-weight: 600; text-align: right; text-transform: uppercase; letter-spacing: .4px; }
table.bd th:first-child { text-align: left; }
table.bd tr.total td { font-weight: 650; border-bottom: 0; border-top: 1px solid var(--line); }
.st { font-size: 11.5px; font-weight: 600; padding: 1px 7px; border-radius: 999px; }
.st.ok { background: var(--good-bg); color: var(--good); }
.st.err { background: var(--bad-bg); color: var(--bad); }
.csv { display: flex; justify-content: flex-end; padding: 4px 0 12px; font-size: 13px; }
.pager { display: flex; gap: 12px; justify-content: flex-end; align-items: center; padding: 12px 0; font-size: 13px; }
.search { display: flex; gap: 10px; align-items: flex-end; margin-bottom: 14px; flex-wrap: wrap; }
.search input[type=text] { width: 300px; }

/* budgets */
.filters.bare .fresh { padding: 10px 0 10px; }
.posture-counts { display: flex; gap: 8px; flex-wrap: wrap; margin: 0 0 14px; }
.pc { font-size: 12.5px; padding: 2px 10px; border-radius: 999px; background: var(--line-2); color: var(--ink-2); }
.pc.bad { background: var(--bad-bg); color: var(--bad); }
.pc.warn { background: var(--warn-bg); color: var(--warn); }
.pc.good { background: var(--good-bg); color: var(--good); }
.card.budget[data-state=exceeded] { border-left: 3px solid var(--bad); }
.card.budget[data-state=warning] { border-left: 3px solid #e0913a; }
.card:target, details:target { box-shadow: 0 0 0 2px #bcd0ee; }
.budget-body { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1.3fr); gap: 32px; align-items: start; }
@media (max-width: 1000px) { .budget-body { grid-template-columns: 1fr; } }
.budget-big { display: flex; align-items: baseline; gap: 6px; font-size: 24px; font-weight: 600; font-variant-numeric: tabular-nums; letter-spacing: -.3px; margin: 2px 0 8px; }
.budget-big .muted { font-size: 14px; font-weight: 400; letter-spacing: 0; }
.budget-big .used { margin-left: auto; font-size: 15px; color: var(--ink-2); }
table.budget-nums { margin-top: 12px; }
table.budget-nums td { padding: 6px 8px 6px 0; }
svg.gauge { width: 100%; height: auto; display: block; overflow: visible; }
svg.gauge .g-track { fill: var(--line-2); }
svg.gauge .g-spent { fill: var(--accent); }
svg.gauge.warning .g-spent { fill: #e0913a; }
svg.gauge.exceeded .g-spent { fill: var(--bad); }
svg.gauge .g-res-bg { fill: #fff; }
svg.gauge .g-res-line { stroke: #7d8592; stroke-width: 2.2; }
svg.gauge .g-tick { stroke: #8d95a3; stroke-width: 1; }
svg.gauge .g-limit { stroke: var(--ink); stroke-width: 2; }
svg.gauge .g-label { font-size: 9px; fill: var(--muted); font-family: inherit; }
svg.gauge .g-fc { fill: var(--ink-2); }
.legend.small { font-size: 12px; color: var(--muted); margin-top: 6px; gap: 4px 14px; }
.legend .sw.spent, .legend .sw.line-spent { background: var(--accent); }
.card.budget[data-state=warning] .sw.spent { background: #e0913a; }
.card.budget[data-state=exceeded] .sw.spent { background: var(--bad); }
.legend .sw.reserved { background: repeating-linear-gradient(45deg, #7d8592 0 2px, #fff 2px 5px); box-shadow: inset 0 0 0 1px #c4c9d2; }
.legend .sw.fc, .legend .sw.limit { height: 0; border-radius: 0; width: 14px; border-top: 2px dashed var(--ink-2); vertical-align: 3px; }
.legend .sw.limit { border-top-color: var(--bad); }
svg.burn { width: 100%; height: auto; display: block; overflow: visible; }
svg.burn text { font-size: 10.5px; fill: var(--muted); font-family: inherit; font-variant-numeric: tabular-nums; }
svg.burn .grid { stroke: var(--line-2); stroke-width: 1; }
svg.burn .baseline { stroke: #c4c9d2; stroke-width: 1; }
svg.burn .b-area { fill: var(--accent-2); }
svg.burn .b-line { fill: none; stroke: var(--accent); stroke-width: 1.8; stroke-linejoin: round; }
svg.burn .b-forecast { stroke: var(--ink-2); stroke-width: 1.5; stroke-dasharray: 5 4; }
svg.burn .b-forecast-dot { fill: var(--ink-2); }
svg.burn .b-forecast-label { fill: var(--ink-2); font-weight: 600; }
svg.burn .b-limit { stroke: var(--bad); stroke-width: 1.3; stroke-dasharray: 6 3; }
svg.burn .b-limit-label { fill: var(--bad); font-weight: 600; }
svg.burn .b-threshold { stroke: #d9a441; stroke-width: 1; stroke-dasharray: 2 3; }
svg.burn .b-now { stroke: var(--faint); stroke-dasharray: 2 2; }
svg.burn .b-exhaust { fill: var(--bad); stroke: #fff; stroke-width: 1.5; }
.posture-row { padding: 9px 0 6px; border-top: 1px solid var(--line-2); }
.posture-head { display: flex; gap: 8px; align-items: baseline; font-size: 13.5px; margin-bottom: 3px; }
.posture-head .right { margin-left: auto; font-variant-numeric: tabular-nums; }
pre.code { background: #17202e; color: #e9edf3; padding: 12px 16px; border-radius: 8px; font-size: 12.5px; line-height: 1.5; overflow-x: auto; text-align: left; display: inline-block; max-width: 100%; margin: 4px 0 10px; }

/* alerts */
.card.alert { border-left: 3px solid var(--bad); }
.card.alert h2 { font-size: 15.5px; }
.alert-text { margin: 0 0 14px; color: var(--ink-2); max-width: 980px; }
.alert-grid { grid-template-columns: minmax(0, 1fr) minmax(0, 1.4fr); gap: 28px; }
@media (max-width: 1000px) { .alert-grid { grid-template-columns: 1fr; } }
h3.mini { font-size: 11px; text-transform: uppercase; letter-spacing: .5px; color: var(--muted); margin: 0 0 6px; font-weight: 600; }
table.evidence td:first-child { color: var(--ink-2); }
table.drivers td.small { color: var(--ink-2); }
.alert-links { display: flex; gap: 10px; margin: 16px 0 10px; }
.alert-links .btn { display: inline-flex; align-items: center; }
.alert-links .btn:hover { text-decoration: none; background: var(--accent-2); }
.deliveries { display: flex; flex-wrap: wrap; gap: 6px 20px; color: var(--ink-2); }
details.alert-row { border-bottom: 1px solid var(--line-2); }
details.alert-row:last-child { border-bottom: 0; }
details.alert-row > summary { list-style: none; cursor: pointer; display: grid; grid-template-columns: 72px minmax(0, 1fr) 250px 270px; gap: 12px; align-items: baseline; padding: 8px 6px; font-size: 13.5px; }
details.alert-row > summary::-webkit-details-marker { display: none; }
details.alert-row > summary:hover { background: #fafbfc; }
details.alert-row[open] > summary { background: #f7f9fc; }
details.alert-row .title { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.alert-more { padding: 10px 6px 16px; }

/* login */
.login { max-width: 380px; margin: 12vh auto 0; }
.login .card { padding: 26px 28px; }
.login h1 { margin-bottom: 4px; }
.login input { width: 100%; font: inherit; height: 36px; padding: 4px 10px; border: 1px solid #cfd4dc; border-radius: 6px; margin: 6px 0 14px; }
.login .btn { width: 100%; height: 36px; }
.error { background: var(--bad-bg); color: var(--bad); border-radius: 6px; padding: 8px 12px; margin: 10px 0; font-size: 13px; }
footer { color: var(--faint); font-size: 12px; padding: 0 0 24px; }
.actions { display: flex; gap: 12px; align-items: flex-end; flex-wrap: wrap; margin: 4px 0 12px; }
.actions form { display: flex; gap: 8px; align-items: flex-end; }
.picker { position: relative; align-self: flex-end; }
.picker > summary { list-style: none; cursor: pointer; }
.picker > summary::-webkit-details-marker { display: none; }
.picker-menu { position: absolute; z-index: 20; top: 40px; left: 0; background: #fff; border: 1px solid #cfd4dc; border-radius: 8px; padding: 10px; box-shadow: 0 6px 24px rgba(0,0,0,.12); min-width: 300px; }
.picker .presets { display: grid; grid-template-columns: 1fr 1fr; gap: 4px 12px; margin-bottom: 10px; }
.picker .days { display: flex; gap: 10px; align-items: flex-end; flex-wrap: wrap; font-size: 12.5px; }
.picker .days label { display: flex; flex-direction: column; gap: 2px; }
table.sortable th.sort { cursor: pointer; user-select: none; }
table.sortable th[aria-sort="descending"]::after { content: " \2193"; }
table.sortable th[aria-sort="ascending"]::after { content: " \2191"; }
"#;

/// Hover details for chart columns, auto refresh, and submit-on-change for the filter
/// selects. Everything works without it.
pub const JS: &str = r#"
(function () {
  var tip = null;
  document.querySelectorAll('[data-tip]').forEach(function (el) {
    var t = el.querySelector('title'); if (t) t.remove();
    el.addEventListener('mousemove', function (e) {
      if (!tip) { tip = document.createElement('div'); tip.className = 'tip'; document.body.appendChild(tip); }
      tip.textContent = el.getAttribute('data-tip');
      var x = e.clientX + 14, y = e.clientY + 14, w = tip.offsetWidth, h = tip.offsetHeight;
      if (x + w > window.innerWidth - 8) x = e.clientX - w - 14;
      if (y + h > window.innerHeight - 8) y = e.clientY - h - 14;
      tip.style.left = x + 'px'; tip.style.top = y + 'px'; tip.style.display = 'block';
    });
    el.addEventListener('mouseleave', function () { if (tip) tip.style.display = 'none'; });
  });
  // Sortable tables: a click on a heading orders the rows shown by that column (the
  // cell's data-v when it has one, else its text), again for the other direction;
  // cells without a value go last either way.
  document.querySelectorAll('table.sortable').forEach(function (table) {
    var heads = table.querySelectorAll('thead th');
    heads.forEach(function (th, col) {
      if (!th.textContent.trim() || th.hasAttribute('data-nosort')) return;
      th.classList.add('sort');
      th.tabIndex = 0;
      var go = function () {
        var dir = th.getAttribute('aria-sort') === 'descending' ? 'ascending' : 'descending';
        heads.forEach(function (h) { h.removeAttribute('aria-sort'); });
        th.setAttribute('aria-sort', dir);
        var body = table.tBodies[0];
        var key = function (tr) {
          var td = tr.cells[col];
          if (!td) return null;
          var v = td.getAttribute('data-v');
          if (v !== null) return v === '' ? null : parseFloat(v);
          var usd = td.querySelector('[data-usd]');
          if (usd) return parseFloat(usd.getAttribute('data-usd'));
          var t = td.textContent.trim();
          if (/^-?[\d,]+(\.\d+)?\s*%?$/.test(t)) return parseFloat(t.replace(/[,%\s]/g, ''));
          return t === '' || t === '—' ? null : t.toLowerCase();
        };
        var keyed = Array.prototype.slice.call(body.rows).map(function (tr, i) { return [key(tr), i, tr]; });
        // A numeric column: a cell without a number ("unpriced") has no value.
        if (keyed.some(function (x) { return typeof x[0] === 'number'; })) {
          keyed.forEach(function (x) { if (typeof x[0] !== 'number') x[0] = null; });
        }
        keyed.sort(function (a, b) {
            if (a[0] === null || b[0] === null) return ((a[0] === null) - (b[0] === null)) || a[1] - b[1];
            var c = (typeof a[0] === 'number' && typeof b[0] === 'number') ? a[0] - b[0] : String(a[0]).localeCompare(String(b[0]));
            return (dir === 'ascending' ? c : -c) || a[1] - b[1];
          })
          .forEach(function (x) { body.appendChild(x[2]); });
      };
      th.addEventListener('click', go);
      th.addEventListener('keydown', function (e) { if (e.key === 'Enter') go(); });
    });
  });
  // The date picker's day fields fill the typed from/to fields (the last day included).
  document.querySelectorAll('input[data-fill]').forEach(function (input) {
    input.addEventListener('change', function () {
      if (!input.value) return;
      var target = input.form && input.form.elements[input.getAttribute('data-fill')];
      if (!target) return;
      var day = input.value;
      if (input.getAttribute('data-fill') === 'to') {
        day = new Date(Date.parse(day + 'T00:00:00Z') + 86400000).toISOString().slice(0, 10);
      }
      target.value = day + ' 00:00';
      var range = input.form.elements['range'];
      if (range) range.remove();
    });
  });
  document.querySelectorAll('select[data-submit]').forEach(function (s) {
    s.addEventListener('change', function () { s.form.submit(); });
  });
  var box = document.getElementById('autorefresh');
  if (box) {
    box.closest('label').hidden = false;
    var key = 'burnrate.autorefresh', timer = null;
    var arm = function () {
      if (timer) clearTimeout(timer);
      if (box.checked) timer = setTimeout(function () { location.reload(); }, 60000);
    };
    box.checked = localStorage.getItem(key) === '1';
    box.addEventListener('change', function () { localStorage.setItem(key, box.checked ? '1' : '0'); arm(); });
    arm();
  }
})();
"#;
