//! `/api/notes`: handlers that take the router from loco's shared store.
//!
//! `SharedStore<RoutedConnection>` is loco's extractor for what `Hooks::after_context` put in
//! `ctx.shared_store` (a clone: the connection is a handle on shared pools). Each request runs
//! inside the client's read-your-writes session (`SessionLayer`, added in
//! `Hooks::after_routes`), so the handlers know nothing of tokens: they pass `&db` to the
//! models like any connection.

use loco_rs::model::query::PaginationQuery;
use loco_rs::prelude::*;
use rwsplit_sea_orm::RoutedConnection;
use serde::Deserialize;

use crate::models::notes;

/// The body of `POST /api/notes`.
#[derive(Debug, Deserialize)]
pub struct NewNote {
    /// What the note says.
    pub text: String,
}

/// `POST /api/notes`: writes the note (the primary) and answers with it as JSON.
async fn create(
    SharedStore(db): SharedStore<RoutedConnection>,
    Json(new): Json<NewNote>,
) -> Result<Response> {
    format::json(notes::Model::create(&db, &new.text).await?)
}

/// `GET /api/notes/{id}`: the note, read where the client's session allows (a replica that
/// has replayed the client's writes, else the primary), or `404`.
async fn show(
    SharedStore(db): SharedStore<RoutedConnection>,
    Path(id): Path<i64>,
) -> Result<Response> {
    match notes::Model::find(&db, id).await? {
        Some(note) => format::json(note),
        None => not_found(),
    }
}

/// `GET /api/notes?page=&page_size=`: a page of notes (loco's `query::fetch_page` on the
/// router).
async fn list(
    SharedStore(db): SharedStore<RoutedConnection>,
    Query(page): Query<PaginationQuery>,
) -> Result<Response> {
    format::json(notes::Model::page(&db, &page).await?)
}

/// The routes, for `Hooks::routes`.
pub fn routes() -> Routes {
    Routes::new()
        .prefix("/api/notes")
        .add("/", post(create))
        .add("/", get(list))
        .add("/{id}", get(show))
}
