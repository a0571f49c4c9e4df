//! The actix-web posts app before the move: plain SeaORM (`DatabaseConnection`), shaped as
//! SeaORM's `actix_example` (handlers in the api, a service layer taking `&DbConn`).
//! [`actix_after`](super::actix_after) is the same app moved over to rwsplit.

use std::net::TcpListener;

use actix_web::cookie::Cookie;
use actix_web::dev::Server;
use actix_web::http::header;
use actix_web::{App, Error, HttpRequest, HttpResponse, HttpServer, Result, error, get, post, web};
use sea_orm::{Database, DatabaseConnection};
use sea_orm_migration::MigratorTrait;

use super::common::{self, DEFAULT_POSTS_PER_PAGE, FLASH, Migrator, Params, html, post};
use service::{Mutation, Query};

#[derive(Debug, Clone)]
struct AppState {
    conn: DatabaseConnection,
}

#[get("/")]
async fn list(req: HttpRequest, data: web::Data<AppState>) -> Result<HttpResponse, Error> {
    let conn = &data.conn;

    let params =
        web::Query::<Params>::from_query(req.query_string()).map_err(error::ErrorBadRequest)?;
    let page = params.page.unwrap_or(1).max(1);
    let posts_per_page = params.posts_per_page.unwrap_or(DEFAULT_POSTS_PER_PAGE);

    let (posts, num_pages) = Query::find_posts_in_page(conn, page, posts_per_page)
        .await
        .map_err(error::ErrorInternalServerError)?;

    let flash = req.cookie(FLASH);
    let body = html::index(&posts, page, num_pages, flash.as_ref().map(Cookie::value));
    Ok(page_showing(body, flash))
}

#[get("/new")]
async fn new() -> Result<HttpResponse, Error> {
    Ok(page_showing(html::new_post(), None))
}

#[post("/")]
async fn create(
    data: web::Data<AppState>,
    post_form: web::Form<post::Model>,
) -> Result<HttpResponse, Error> {
    let conn = &data.conn;

    let form = post_form.into_inner();

    Mutation::create_post(conn, form).await.map_err(error::ErrorInternalServerError)?;

    Ok(see_other("/", common::CREATED))
}

#[get(r"/{id:\d+}")]
async fn edit(
    req: HttpRequest,
    data: web::Data<AppState>,
    id: web::Path<i32>,
) -> Result<HttpResponse, Error> {
    let conn = &data.conn;
    let id = id.into_inner();

    let post: Option<post::Model> =
        Query::find_post_by_id(conn, id).await.map_err(error::ErrorInternalServerError)?;

    match post {
        Some(post) => {
            let flash = req.cookie(FLASH);
            let body = html::edit(&post, flash.as_ref().map(Cookie::value));
            Ok(page_showing(body, flash))
        }
        None => Ok(HttpResponse::NotFound()
            .content_type("text/html; charset=utf-8")
            .body(html::not_found(req.path()))),
    }
}

#[post(r"/{id:\d+}")]
async fn update(
    data: web::Data<AppState>,
    id: web::Path<i32>,
    post_form: web::Form<post::Model>,
) -> Result<HttpResponse, Error> {
    let conn = &data.conn;
    let form = post_form.into_inner();
    let id = id.into_inner();

    Mutation::update_post_by_id(conn, id, form).await.map_err(error::ErrorInternalServerError)?;

    Ok(see_other(&format!("/{id}"), common::UPDATED))
}

#[post(r"/delete/{id:\d+}")]
async fn delete(data: web::Data<AppState>, id: web::Path<i32>) -> Result<HttpResponse, Error> {
    let conn = &data.conn;
    let id = id.into_inner();

    Mutation::delete_post(conn, id).await.map_err(error::ErrorInternalServerError)?;

    Ok(see_other("/", common::DELETED))
}

async fn not_found(request: HttpRequest) -> Result<HttpResponse, Error> {
    Ok(HttpResponse::NotFound()
        .content_type("text/html; charset=utf-8")
        .body(html::not_found(request.uri().path())))
}

/// An HTML page; if it shows the flash message (`flash`), it clears the cookie.
fn page_showing(body: String, flash: Option<Cookie<'_>>) -> HttpResponse {
    let mut response = HttpResponse::Ok().content_type("text/html; charset=utf-8").body(body);
    if flash.is_some() {
        let mut removal = Cookie::build(FLASH, "").path("/").finish();
        removal.make_removal();
        response.add_cookie(&removal).ok();
    }
    response
}

/// `303 See Other` to `location`, with a flash message for the next page.
fn see_other(location: &str, flash: &'static str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .cookie(Cookie::build(FLASH, flash).path("/").finish())
        .finish()
}

/// Connects and migrates: the app's `main` up to serving.
pub async fn start(database_url: &str) -> anyhow::Result<DatabaseConnection> {
    let conn = Database::connect(database_url).await?;
    Migrator::up(&conn, None).await?;
    Ok(conn)
}

/// Serves the app on `listener`: the server, to `.await` inside an actix-web system
/// (`#[actix_web::main]`, or `actix_web::rt::System::new().block_on(..)`).
pub fn serve(conn: DatabaseConnection, listener: TcpListener) -> anyhow::Result<Server> {
    let state = AppState { conn };
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(state.clone()))
            .default_service(web::route().to(not_found))
            .configure(init)
    })
    .listen(listener)?
    .run();
    Ok(server)
}

fn init(cfg: &mut web::ServiceConfig) {
    cfg.service(list);
    cfg.service(new);
    cfg.service(create);
    cfg.service(edit);
    cfg.service(update);
    cfg.service(delete);
}

/// The service layer (the `service` crate of SeaORM's examples): queries and mutations.
pub mod service {
    use sea_orm::{
        ActiveModelTrait, DbConn, DbErr, DeleteResult, EntityTrait, PaginatorTrait, QueryOrder, Set,
    };

    use super::super::common::post;

    /// Reads.
    #[derive(Debug)]
    pub struct Query;

    impl Query {
        /// The post `id`, if there is one.
        pub async fn find_post_by_id(db: &DbConn, id: i32) -> Result<Option<post::Model>, DbErr> {
            post::Entity::find_by_id(id).one(db).await
        }

        /// Page `page` (from 1) of the posts, newest first, and the number of pages.
        pub async fn find_posts_in_page(
            db: &DbConn,
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
        pub async fn create_post(
            db: &DbConn,
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
        pub async fn update_post_by_id(
            db: &DbConn,
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
        pub async fn delete_post(db: &DbConn, id: i32) -> Result<DeleteResult, DbErr> {
            let post: post::ActiveModel = post::Entity::find_by_id(id)
                .one(db)
                .await?
                .ok_or(DbErr::Custom("Cannot find post.".to_owned()))
                .map(Into::into)?;

            post.delete(db).await
        }
    }
}
