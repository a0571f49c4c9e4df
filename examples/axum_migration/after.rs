//! The app after the move: [`before`](super::before) on `RoutedConnection` and
//! `SessionLayer`, changed exactly as README.md's "Moving an axum app over" says (a tidy test,
//! `readme_migration_is_the_diff` in `xtask/src/tidy.rs`, checks it). `cargo xtask ci` runs it
//! on a real primary and two lagging replicas (`examples/tests/axum_migration.rs`).

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use rwsplit_axum::{SessionLayer, SigningKey, TokenEnvelope};
use rwsplit_sea_orm::RoutedConnection;
use sea_orm_migration::MigratorTrait;
use tokio::net::TcpListener;

use super::common::{AppError, Migrator, NewNote, Note};

/// The app's `main`: connects, migrates, serves on `listener`.
pub async fn main(listener: TcpListener) -> anyhow::Result<()> {
    let db = RoutedConnection::from_env().await?;
    Migrator::up(db.primary(), None).await?;
    let key = SigningKey::new(std::env::var("RWSPLIT_TOKEN_KEY")?)?;
    let app = Router::new()
        .route("/notes", post(create).get(list))
        .layer(SessionLayer::builder(db.clone(), TokenEnvelope::signed(key)).build()?)
        .with_state(db);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn create(
    State(db): State<RoutedConnection>,
    Json(new): Json<NewNote>,
) -> Result<Json<Note>, AppError> {
    Ok(Json(notes::insert(&db, &new.text).await?))
}

async fn list(State(db): State<RoutedConnection>) -> Result<Json<Vec<Note>>, AppError> {
    Ok(Json(notes::all(&db).await?))
}

/// The model (`models/notes.rs` in a larger app).
pub mod notes {
    use sea_orm::{ActiveModelTrait, ConnectionTrait, DbErr, EntityTrait, QueryOrder, Set};

    use super::super::common::{Note, note};

    /// Inserts a note.
    pub async fn insert<C: ConnectionTrait>(db: &C, text: &str) -> Result<Note, DbErr> {
        note::ActiveModel { text: Set(text.to_owned()), ..Default::default() }.insert(db).await
    }

    /// Every note, oldest first.
    pub async fn all<C: ConnectionTrait>(db: &C) -> Result<Vec<Note>, DbErr> {
        note::Entity::find().order_by_asc(note::Column::Id).all(db).await
    }
}
