//! The few HTTP/1.1 requests the testkit sends to Patroni's REST API and etcd's JSON gateway,
//! all on loopback: hyper's connection-level client over one tokio `TcpStream` per request,
//! bounded in time and size.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper_util::rt::TokioIo;

use crate::error::{Error, Result};

/// Largest response body the testkit reads (a 20-member `/cluster` is about 5 KiB).
const MAX_BODY: usize = 1 << 20;

/// An HTTP response: its status and body.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: String,
}

/// Sends `method path` with an optional JSON body to `127.0.0.1:port`, within `timeout`.
pub(crate) async fn request(
    method: &str,
    port: u16,
    path: &str,
    json: Option<&str>,
    timeout: Duration,
) -> Result<Response> {
    let what = format!("{method} http://127.0.0.1:{port}{path}");
    match tokio::time::timeout(timeout, send(method, port, path, json)).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(reason)) => Err(Error::Http { request: what, reason }),
        Err(_) => Err(Error::Timeout { what, waited: timeout }),
    }
}

async fn send(method: &str, port: u16, path: &str, json: Option<&str>) -> Result<Response, String> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let driver = tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", format!("127.0.0.1:{port}"))
        .header("connection", "close");
    if json.is_some() {
        req = req.header("content-type", "application/json");
    }
    let body = Full::new(Bytes::from(json.unwrap_or_default().to_owned()));
    let req = req.body(body).map_err(|e| format!("building the request: {e}"))?;
    let result = async {
        let resp = sender.send_request(req).await.map_err(|e| format!("sending: {e}"))?;
        let status = resp.status().as_u16();
        let bytes = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| format!("reading the body: {e}"))?
            .to_bytes();
        Ok(Response { status, body: String::from_utf8_lossy(&bytes).into_owned() })
    }
    .await;
    driver.abort();
    result
}
