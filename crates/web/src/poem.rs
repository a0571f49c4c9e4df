//! poem middleware: [`SessionMiddleware`] (feature `poem`).

use poem::http::StatusCode;
use poem::http::header::{self, HeaderName, HeaderValue};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};

use crate::{Incoming, SessionCarrier};

/// poem middleware that runs each request in the client's read-your-writes
/// [`Session`](rwsplit_sea_orm::Session): [`SessionCarrier`]'s three steps as a poem
/// [`Middleware`], for `EndpointExt::with` (or `Route::with`).
///
/// The session is also in the request's extensions (`Data<&Session>`), for handlers that hand
/// it to a spawned task. A token [`OnBadToken::Reject`](crate::OnBadToken::Reject) refuses gets
/// `400 Bad Request` without the endpoint running. An endpoint's error is turned into its
/// response here (as poem would turn it at the top), so that a request that wrote and then
/// failed still sends its token.
///
/// Where it goes: `.with(SessionMiddleware::new(..))` on the route tree, outside every endpoint
/// that reads or writes through the `RoutedConnection`; poem's `Tracing`, `Cors` and
/// `Compression` may sit on either side.
///
/// ```no_run
/// use poem::{EndpointExt, Route, Server, get, handler, listener::TcpListener};
/// use rwsplit_sea_orm::RoutedConnection;
/// use rwsplit_web::poem::SessionMiddleware;
/// use rwsplit_web::{SessionCarrier, SigningKey, TokenEnvelope};
///
/// #[handler]
/// fn index() -> &'static str {
///     "hello"
/// }
///
/// # async fn demo(db: RoutedConnection) -> Result<(), Box<dyn std::error::Error>> {
/// let envelope = TokenEnvelope::signed(SigningKey::new(std::env::var("RYW_KEY")?)?);
/// let carrier = SessionCarrier::builder(db.clone(), envelope).build()?;
/// let app = Route::new().at("/", get(index)).data(db).with(SessionMiddleware::new(carrier));
/// Server::new(TcpListener::bind("127.0.0.1:3000")).run(app).await?;
/// # Ok(()) }
/// # fn main() { let _ = demo; }
/// ```
#[derive(Clone, Debug)]
pub struct SessionMiddleware {
    carrier: SessionCarrier,
}

impl SessionMiddleware {
    /// Middleware carrying sessions as `carrier` says.
    pub fn new(carrier: SessionCarrier) -> SessionMiddleware {
        SessionMiddleware { carrier }
    }
}

impl<E: Endpoint> Middleware<E> for SessionMiddleware {
    type Output = SessionEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        SessionEndpoint { inner: ep, carrier: self.carrier.clone() }
    }
}

/// The endpoint [`SessionMiddleware`] wraps around the app's.
#[derive(Debug)]
pub struct SessionEndpoint<E> {
    inner: E,
    carrier: SessionCarrier,
}

impl<E: Endpoint> Endpoint for SessionEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let incoming = {
            let headers = req.headers();
            let token = headers.get(self.carrier.header_name()).and_then(|v| v.to_str().ok());
            let cookies = headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok());
            self.carrier.incoming(token, cookies)
        };
        match incoming {
            Incoming::Reject(rejection) => {
                let mut response = Response::builder()
                    .status(StatusCode::BAD_REQUEST)
                    .content_type("text/plain; charset=utf-8");
                for (name, value) in rejection.headers() {
                    response = response.header(name, value);
                }
                Ok(response.body(rejection.body().to_owned()))
            }
            Incoming::Run(request) => {
                req.extensions_mut().insert(request.session().clone());
                let mut response = match request.scope(self.inner.call(req)).await {
                    Ok(output) => output.into_response(),
                    Err(error) => error.into_response(),
                };
                let outgoing = request.outgoing().await;
                let add = outgoing.for_response(|n| response.headers().contains_key(n));
                for (name, value) in add {
                    // Both are header-safe by construction (the carrier checks its names).
                    if let (Ok(n), Ok(v)) =
                        (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value))
                    {
                        response.headers_mut().append(n, v);
                    }
                }
                Ok(response)
            }
        }
    }
}
