#!/usr/bin/env python3
"""Export Pydantic's genai-prices data (MIT; shipped in its wheel as Python data) to the
JSON the price book generator reads: prices/source/genai-prices-VERSION.json.

    scripts/export-genai-prices.py                # newest genai-prices on PyPI
    scripts/export-genai-prices.py 0.2.3          # a given version
    scripts/export-genai-prices.py --wheel FILE   # a wheel already downloaded

Only exact model names are exported (the model id and its `equals` match clauses); prefix,
substring and regex rules are left out, because the book never prices by similarity.
Prices with a time-of-day constraint (off-peak rates) and request-context variants are
left out too (the book format has no time of day). Money stays decimal text.
"""

import hashlib
import json
import pathlib
import subprocess
import sys
import tempfile
import types
import zipfile

FIELDS = {
    "input_mtok": "inputMtok",
    "cache_read_mtok": "cacheReadMtok",
    "cache_write_mtok": "cacheWriteMtok",
    "output_mtok": "outputMtok",
}


def wheel_path(args, work):
    if args[:1] == ["--wheel"]:
        return pathlib.Path(args[1])
    spec = "genai-prices" + (f"=={args[0]}" if args else "")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", work, spec],
        check=True,
    )
    return next(pathlib.Path(work).glob("genai_prices-*.whl"))


def load_data(wheel, work):
    """Import genai_prices.data from the wheel without the package's __init__ (which
    pulls in its HTTP client): only the data and its types are needed."""
    with zipfile.ZipFile(wheel) as z:
        z.extractall(work)
    package = types.ModuleType("genai_prices")
    package.__path__ = [str(pathlib.Path(work) / "genai_prices")]
    sys.modules["genai_prices"] = package
    sys.path.insert(0, work)
    from genai_prices import data  # noqa: E402

    return data


def names(model):
    """The model's id and every exact name its match rule lists."""
    found = [model.id]
    stack = [model.match]
    while stack:
        clause = stack.pop()
        if hasattr(clause, "equals"):
            found.append(clause.equals)
        for attr in ("or_", "and_"):
            if attr == "or_" and hasattr(clause, attr):
                stack.extend(getattr(clause, attr))
    return sorted(set(n.lower() for n in found))


def price_text(value):
    if value is None:
        return None
    if hasattr(value, "tiers"):
        return {
            "base": str(value.base),
            "tiers": [{"start": t.start, "price": str(t.price)} for t in value.tiers],
        }
    return str(value)


def prices(model):
    periods = model.prices if isinstance(model.prices, list) else [model.prices]
    out = []
    for period in periods:
        constraint = getattr(period, "constraint", None)
        price = getattr(period, "prices", period)
        if constraint is not None and not hasattr(constraint, "start_date"):
            continue  # time of day: not expressible
        row = {"startDate": str(constraint.start_date) if constraint is not None else None}
        for field, name in FIELDS.items():
            row[name] = price_text(getattr(price, field, None))
        out.append(row)
    return out


def main(args):
    with tempfile.TemporaryDirectory() as work:
        wheel = wheel_path(args, work)
        version = wheel.name.split("-")[1]
        sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
        data = load_data(wheel, work)
        export = {
            "package": "genai-prices",
            "version": version,
            "wheel": wheel.name,
            "wheelSha256": sha,
            "license": "MIT, Copyright (c) Pydantic Services Inc. (see prices/LICENSE.genai-prices)",
            "providers": [
                {
                    "id": provider.id,
                    "pricingUrls": provider.pricing_urls or [],
                    "models": [
                        {
                            "id": model.id,
                            "names": names(model),
                            "checked": str(getattr(model, "prices_checked", None) or "") or None,
                            "prices": prices(model),
                        }
                        for model in provider.models
                    ],
                }
                for provider in data.providers
            ],
        }
    out = pathlib.Path(__file__).resolve().parent.parent / "prices" / "source"
    for old in out.glob("genai-prices-*.json"):
        old.unlink()
    path = out / f"genai-prices-{version}.json"
    path.write_text(json.dumps(export, indent=1, sort_keys=False) + "\n")
    print(f"wrote {path} ({sum(len(p['models']) for p in export['providers'])} models, sha256 of wheel {sha})")


if __name__ == "__main__":
    main(sys.argv[1:])
