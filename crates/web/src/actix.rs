//! actix-web middleware: [`SessionMiddleware`] (feature `actix-web`).

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;

use actix_web::body::EitherBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpMessage, HttpResponse};

use crate::{Incoming, SessionCarrier};

/// actix-web middleware that runs each request in the client's read-your-writes
/// [`Session`](rwsplit_sea_orm::Session): [`SessionCarrier`]'s three steps as an actix-web
/// [`Transform`], for `App::wrap` or `Scope::wrap`.
///
/// The session is also in the request's extensions (`web::ReqData<Session>`), for handlers that
/// hand it to a spawned task. A token [`OnBadToken::Reject`](crate::OnBadToken::Reject) refuses
/// gets `400 Bad Request` without the handler running. The response's headers gain the
/// session's token when the request moved it on; its body is not touched (streamed bodies
/// stream).
///
/// Where it goes among the app's middleware: `wrap` it last (outermost) or after anything that
/// must see requests first (logging, CORS); it must wrap every handler that reads or writes
/// through the `RoutedConnection`. Compression and cookie middleware may sit on either side.
///
/// ```no_run
/// use actix_web::{App, HttpServer, web};
/// use rwsplit_sea_orm::RoutedConnection;
/// use rwsplit_web::actix::SessionMiddleware;
/// use rwsplit_web::{SessionCarrier, SigningKey, TokenEnvelope};
///
/// # async fn demo(db: RoutedConnection) -> Result<(), Box<dyn std::error::Error>> {
/// let envelope = TokenEnvelope::signed(SigningKey::new(std::env::var("RYW_KEY")?)?);
/// let carrier = SessionCarrier::builder(db.clone(), envelope).build()?;
/// HttpServer::new(move || {
///     App::new()
///         .app_data(web::Data::new(db.clone()))
///         .wrap(SessionMiddleware::new(carrier.clone()))
/// })
/// .bind(("127.0.0.1", 8080))?
/// .run()
/// .await?;
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

impl<S, B> Transform<S, ServiceRequest> for SessionMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    S::Future: 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = SessionService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(SessionService { service: Rc::new(service), carrier: self.carrier.clone() }))
    }
}

/// The service [`SessionMiddleware`] wraps around the app's.
#[derive(Debug)]
pub struct SessionService<S> {
    service: Rc<S>,
    carrier: SessionCarrier,
}

impl<S, B> Service<ServiceRequest> for SessionService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    S::Future: 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let carrier = self.carrier.clone();
        Box::pin(async move {
            let incoming = {
                let headers = req.headers();
                let token = headers.get(carrier.header_name()).and_then(|v| v.to_str().ok());
                let cookies = headers.get_all(header::COOKIE).filter_map(|v| v.to_str().ok());
                carrier.incoming(token, cookies)
            };
            match incoming {
                Incoming::Reject(rejection) => {
                    let mut response = HttpResponse::BadRequest();
                    response.content_type("text/plain; charset=utf-8");
                    for (name, value) in rejection.headers() {
                        response.append_header((name, value));
                    }
                    let response = response.body(rejection.body().to_owned());
                    Ok(req.into_response(response).map_into_right_body())
                }
                Incoming::Run(request) => {
                    req.extensions_mut().insert(request.session().clone());
                    let mut response = request.scope(service.call(req)).await?;
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
                    Ok(response.map_into_left_body())
                }
            }
        })
    }
}
