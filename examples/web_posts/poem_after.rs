//! The poem posts app after the move: [`poem_before`](super::poem_before) on
//! `RoutedConnection` (primary and replicas), its migration on `db.primary()`, the service
//! layer generic over `ConnectionTrait`, and `rwsplit-web`'s `SessionMiddleware` around the
//! routes so that the page after a `POST` and its redirect reads what the `POST` wrote.

use std::net::TcpListener;

use poem::error::InternalServerError;
use poem::http::StatusCode;
use poem::listener::TcpAcceptor;
use poem::middleware::CookieJarManager;
use poem::web::cookie::{Cookie, CookieJar};
use poem::web::{Data, Form, Html, Path, Query};
use poem::{EndpointExt, Error, IntoResponse, Response, Result, Route, Server, get, handler, post};
use rwsplit_sea_orm::RoutedConnection;
use rwsplit_web::poem::SessionMiddleware;
use rwsplit_web::{SessionCarrier, SigningKey, TokenEnvelope};
use sea_orm_migration::MigratorTrait;

use super::common::{self, DEFAULT_POSTS_PER_PAGE, FLASH, Migrator, Params, html};
use service::{Mutation as MutationCore, Query as QueryCore};

#[derive(Debug, Clone)]
struct AppState {
    conn: RoutedConnection,
}

#[handler]
async fn create(
    state: Data<&AppState>,
    cookies: &CookieJar,
    form: Form<common::post::Model>,
) -> Result<impl IntoResponse> {
    let form = form.0;
    let conn = &state.conn;

    MutationCore::create_post(conn, form).await.map_err(InternalServerError)?;

    Ok(see_other(cookies, "/", common::CREATED))
}

#[handler]
async fn list(
    state: Data<&AppState>,
    cookies: &CookieJar,
    Query(params): Query<Params>,
) -> Result<impl IntoResponse> {
    let conn = &state.conn;
    let page = params.page.unwrap_or(1).max(1);
    let posts_per_page = params.posts_per_page.unwrap_or(DEFAULT_POSTS_PER_PAGE);

    let (posts, num_pages) = QueryCore::find_posts_in_page(conn, page, posts_per_page)
        .await
        .map_err(InternalServerError)?;

    let flash = take_flash(cookies);
    Ok(Html(html::index(&posts, page, num_pages, flash.as_deref())))
}

#[handler]
async fn new() -> Result<impl IntoResponse> {
    Ok(Html(html::new_post()))
}

#[handler]
async fn edit(
    state: Data<&AppState>,
    cookies: &CookieJar,
    Path(id): Path<i32>,
) -> Result<impl IntoResponse> {
    let conn = &state.conn;

    let post: common::post::Model = QueryCore::find_post_by_id(conn, id)
        .await
        .map_err(InternalServerError)?
        .ok_or_else(|| Error::from_status(StatusCode::NOT_FOUND))?;

    let flash = take_flash(cookies);
    Ok(Html(html::edit(&post, flash.as_deref())))
}

#[handler]
async fn update(
    state: Data<&AppState>,
    cookies: &CookieJar,
    Path(id): Path<i32>,
    form: Form<common::post::Model>,
) -> Result<impl IntoResponse> {
    let conn = &state.conn;
    let form = form.0;

    MutationCore::update_post_by_id(conn, id, form).await.map_err(InternalServerError)?;

    Ok(see_other(cookies, &format!("/{id}"), common::UPDATED))
}

#[handler]
async fn delete(
    state: Data<&AppState>,
    cookies: &CookieJar,
    Path(id): Path<i32>,
) -> Result<impl IntoResponse> {
    let conn = &state.conn;

    MutationCore::delete_post(conn, id).await.map_err(InternalServerError)?;

    Ok(see_other(cookies, "/", common::DELETED))
}

/// The flash message, if the request has one; the response clears its cookie.
fn take_flash(cookies: &CookieJar) -> Option<String> {
    let flash = cookies.get(FLASH).map(|c| c.value_str().to_owned());
    if flash.is_some() {
        cookies.remove(FLASH);
    }
    flash
}

/// `303 See Other` to `location`, with a flash message for the next page.
fn see_other(cookies: &CookieJar, location: &str, flash: &'static str) -> Response {
    let mut cookie = Cookie::new_with_str(FLASH, flash);
    cookie.set_path("/");
    cookies.add(cookie);
    StatusCode::SEE_OTHER.with_header("location", location).into_response()
}

/// Connects and migrates: the app's `main` up to serving.
pub async fn start(database_url: &str, replica_urls: &str) -> anyhow::Result<RoutedConnection> {
    let conn = RoutedConnection::builder()
        .primary(database_url)
        .replicas(replica_urls.split(','))
        .connect()
        .await?;
    Migrator::up(conn.primary(), None).await?;
    Ok(conn)
}

/// Serves the app on `listener` until the future is dropped.
pub async fn serve(
    conn: RoutedConnection,
    token_key: &str,
    listener: TcpListener,
) -> anyhow::Result<()> {
    let envelope = TokenEnvelope::signed(SigningKey::new(token_key)?);
    // `secure_cookie(false)`: served over plain HTTP here; behind HTTPS keep the default.
    let carrier = SessionCarrier::builder(conn.clone(), envelope).secure_cookie(false).build()?;
    let state = AppState { conn };
    let app = Route::new()
        .at("/", post(create).get(list))
        .at("/new", new)
        .at("/:id", get(edit).post(update))
        .at("/delete/:id", post(delete))
        .data(state)
        .with(CookieJarManager::new())
        .with(SessionMiddleware::new(carrier));
    listener.set_nonblocking(true)?;
    Server::new_with_acceptor(TcpAcceptor::from_std(listener)?).run(app).await?;
    Ok(())
}

/// The service layer (the `service` crate of SeaORM's examples): queries and mutations, on
/// any connection.
pub mod service {
    use sea_orm::{
        ActiveModelTrait, ConnectionTrait, DbErr, DeleteResult, EntityTrait, PaginatorTrait,
        QueryOrder, Set,
    };

    use super::super::common::post;

    /// Reads.
    #[derive(Debug)]
    pub struct Query;

    impl Query {
        /// The post `id`, if there is one.
        pub async fn find_post_by_id<C: ConnectionTrait>(
            db: &C,
            id: i32,
        ) -> Result<Option<post::Model>, DbErr> {
            post::Entity::find_by_id(id).one(db).await
        }

        /// Page `page` (from 1) of the posts, newest first, and the number of pages.
        pub async fn find_posts_in_page<C: ConnectionTrait>(
            db: &C,
            page: u64,
            posts_per_page: u64,
        ) -> Result<(Vec<post::Model>, u64), DbErr> {
            // Setup paginator
            let paginator =
                post::Entity::find().order_by_desc(post::Column::Id).paginate(db, posts_per_page);
            let num_pages = paginator.num_pages().await?;

            // Fetch paginated posts
            paginator.fetch_page(page - 1).await.map(|p| (p, num_pages))
        }
    }

    /// Writes.
    #[derive(Debug)]
    pub struct Mutation;

    impl Mutation {
        /// Creates a post from the form.
        pub async fn create_post<C: ConnectionTrait>(
            db: &C,
            form_data: post::Model,
        ) -> Result<post::ActiveModel, DbErr> {
            post::ActiveModel {
                title: Set(form_data.title),
                text: Set(form_data.text),
                ..Default::default()
            }
            .save(db)
            .await
        }

        /// Updates the post `id` from the form.
        pub async fn update_post_by_id<C: ConnectionTrait>(
            db: &C,
            id: i32,
            form_data: post::Model,
        ) -> Result<post::Model, DbErr> {
            let post: post::ActiveModel = post::Entity::find_by_id(id)
                .one(db)
                .await?
                .ok_or(DbErr::Custom("Cannot find post.".to_owned()))
                .map(Into::into)?;

            post::ActiveModel {
                id: post.id,
                title: Set(form_data.title),
                text: Set(form_data.text),
            }
            .update(db)
            .await
        }

        /// Deletes the post `id`.
        pub async fn delete_post<C: ConnectionTrait>(
            db: &C,
            id: i32,
        ) -> Result<DeleteResult, DbErr> {
            let post: post::ActiveModel = post::Entity::find_by_id(id)
                .one(db)
                .await?
                .ok_or(DbErr::Custom("Cannot find post.".to_owned()))
                .map(Into::into)?;

            post.delete(db).await
        }
    }
}
