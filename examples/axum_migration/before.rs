//! The app before the move: an axum notes service on plain SeaORM (`DatabaseConnection`).
//! [`after`](super::after) is the same app moved over as README.md's "Moving an axum app over"
//! says; a tidy test (`xtask/src/tidy.rs`, `readme_migration_is_the_diff`) checks that the
//! two differ by exactly what the README shows.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use sea_orm::{Database, DatabaseConnection};
use sea_orm_migration::MigratorTrait;
use tokio::net::TcpListener;

use super::common::{AppError, Migrator, NewNote, Note};

/// The app's `main`: connects, migrates, serves on `listener`.
pub async fn main(listener: TcpListener) -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL")?;
    let db = Database::connect(url).await?;
    Migrator::up(&db, None).await?;
    let app = Router::new().route("/notes", post(create).get(list)).with_state(db);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn create(
    State(db): State<DatabaseConnection>,
    Json(new): Json<NewNote>,
) -> Result<Json<Note>, AppError> {
    Ok(Json(notes::insert(&db, &new.text).await?))
}

async fn list(State(db): State<DatabaseConnection>) -> Result<Json<Vec<Note>>, AppError> {
    Ok(Json(notes::all(&db).await?))
}

/// The model (`models/notes.rs` in a larger app).
pub mod notes {
    use sea_orm::{ActiveModelTrait, DatabaseConnection, DbErr, EntityTrait, QueryOrder, Set};

    use super::super::common::{Note, note};

    /// Inserts a note.
    pub async fn insert(db: &DatabaseConnection, text: &str) -> Result<Note, DbErr> {
        note::ActiveModel { text: Set(text.to_owned()), ..Default::default() }.insert(db).await
    }

    /// Every note, oldest first.
    pub async fn all(db: &DatabaseConnection) -> Result<Vec<Note>, DbErr> {
        note::Entity::find().order_by_asc(note::Column::Id).all(db).await
    }
}
