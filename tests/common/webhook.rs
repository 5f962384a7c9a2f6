//! A local webhook receiver for the alert and digest tests: a real HTTP server on a
//! loopback port that keeps every request's headers and body.

use axum::body::Bytes;
use axum::http::HeaderMap;
use std::sync::{Arc, Mutex};

/// One request the receiver got: its headers and body.
pub type Message = (Vec<(String, String)>, Vec<u8>);

/// What the receiver got so far, in arrival order.
#[derive(Clone, Default)]
pub struct Inbox(Arc<Mutex<Vec<Message>>>);

impl Inbox {
    pub fn messages(&self) -> Vec<Message> {
        self.0.lock().unwrap().clone()
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// Start a receiver; returns its inbox and the URL (ending in `path`) to post to.
pub async fn receiver(path: &str) -> (Inbox, String) {
    let inbox = Inbox::default();
    let keep = inbox.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
        let inbox = keep.clone();
        async move {
            let headers = headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
                .collect();
            inbox.0.lock().unwrap().push((headers, body.to_vec()));
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{path}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (inbox, url)
}
