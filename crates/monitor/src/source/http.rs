//! One bounded HTTP/1.1 GET: hyper's connection-level client over a tokio `TcpStream` (no
//! pool, no TLS, no redirects), with a deadline on the whole exchange and a cap on the body.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;

use super::SourceError;

/// An `http://host:port` endpoint, parsed once. It holds no credentials (they are refused),
/// so its `Display` is safe to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// The host as written (brackets kept for IPv6), for the `Host` header and messages.
    authority: String,
    /// The host without brackets, for connecting.
    host: String,
    port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}", self.authority)
    }
}

impl Endpoint {
    /// Parses `http://host[:port][/path]` (the path is ignored, so Patroni's `api_url`,
    /// `…/patroni`, works too). Without a port, `default_port`.
    pub(crate) fn parse(url: &str, default_port: u16) -> Result<Endpoint, SourceError> {
        let invalid = |reason| SourceError::InvalidEndpoint { endpoint: redact(url), reason };
        let rest = if let Some(r) = url.strip_prefix("http://") {
            r
        } else if url.starts_with("https://") {
            return Err(invalid("https is not supported; use the REST API over http"));
        } else {
            return Err(invalid("expected http://host:port"));
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            return Err(invalid(
                "credentials in the URL are not supported (GET /cluster needs none)",
            ));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| invalid("unclosed '['"))?;
            match after.strip_prefix(':') {
                Some(p) => (host, Some(p)),
                None if after.is_empty() => (host, None),
                None => return Err(invalid("junk after the IPv6 address")),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        let port = match port {
            Some(p) => p.parse::<u16>().map_err(|_| invalid("the port is not a number 0-65535"))?,
            None => default_port,
        };
        let authority =
            if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        Ok(Endpoint { authority, host: host.to_owned(), port })
    }

    /// `GET path` within `timeout`, the body at most `limit` bytes.
    pub(crate) async fn get(
        &self,
        path: &str,
        timeout: Duration,
        limit: usize,
    ) -> Result<Bytes, SourceError> {
        let url = format!("{self}{path}");
        match tokio::time::timeout(timeout, self.exchange(path, &url, limit)).await {
            Ok(r) => r,
            Err(_) => Err(SourceError::Timeout { endpoint: url, after: timeout }),
        }
    }

    async fn exchange(&self, path: &str, url: &str, limit: usize) -> Result<Bytes, SourceError> {
        let request_error = |e: Box<dyn std::error::Error + Send + Sync>| SourceError::Request {
            endpoint: url.to_owned(),
            source: e,
        };
        let stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|source| SourceError::Connect { endpoint: url.to_owned(), source })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| request_error(Box::new(e)))?;
        // The connection task ends with the exchange (or when this future is dropped and the
        // stream with it); aborting it on every path keeps nothing behind.
        let driver = AbortOnDrop(tokio::spawn(conn));
        let req = hyper::Request::get(path)
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::ACCEPT, "application/json")
            .header(hyper::header::CONNECTION, "close")
            .body(Empty::<Bytes>::new())
            .map_err(|e| request_error(Box::new(e)))?;
        let resp = sender.send_request(req).await.map_err(|e| request_error(Box::new(e)))?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(SourceError::Status { endpoint: url.to_owned(), status });
        }
        let declared = resp
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(SourceError::TooLarge { endpoint: url.to_owned(), limit });
        }
        let body = Limited::new(resp.into_body(), limit).collect().await.map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                SourceError::TooLarge { endpoint: url.to_owned(), limit }
            } else {
                request_error(e)
            }
        })?;
        drop(driver);
        Ok(body.to_bytes())
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<Result<(), hyper::Error>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `url` with anything between `://` and `@` replaced, for messages about a bad endpoint.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://<redacted>@{}", &url[..s], &url[at + 1..]),
        (None, Some(at)) => format!("<redacted>@{}", &url[at + 1..]),
        _ => url.to_owned(),
    }
}
