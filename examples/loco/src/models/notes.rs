//! Notes: the `notes` table's entity and the queries the handlers run.
//!
//! Every query takes `db: &C` where `C: ConnectionTrait`, never `&DatabaseConnection`: the
//! handlers pass the [`RoutedConnection`](rwsplit_sea_orm::RoutedConnection), which sends the
//! insert to the primary and the reads to a replica that has replayed what the caller's
//! session wrote (or to the primary); seeds and tests may pass loco's `ctx.db`.

use loco_rs::model::query::{self, PageResponse, PaginationQuery};
use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, QueryOrder};
use serde::{Deserialize, Serialize};

/// A note. `Serialize` for the JSON the handlers answer with, `Deserialize` for loco's seeds
/// (`src/fixtures/notes.yaml`).
// `DeriveEntityModel` also generates `Entity`, `Column`, `PrimaryKey` and `ActiveModel`, which
// carry no docs of their own.
#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "notes")]
pub struct Model {
    /// A `bigserial` key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// What the note says.
    pub text: String,
}

/// Notes relate to nothing.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// Writes a note and returns it (`INSERT … RETURNING`: the primary). Through a
    /// `RoutedConnection`, the write's position is recorded in the caller's read-your-writes
    /// scope — in a loco handler behind `SessionLayer`, the client's session.
    pub async fn create<C: ConnectionTrait>(db: &C, text: &str) -> Result<Model, DbErr> {
        ActiveModel { text: Set(text.to_owned()), ..Default::default() }.insert(db).await
    }

    /// The note with this id, if any (a read: a replica that has everything the caller's scope
    /// wrote or read, else the primary).
    pub async fn find<C: ConnectionTrait>(db: &C, id: i64) -> Result<Option<Model>, DbErr> {
        Entity::find_by_id(id).one(db).await
    }

    /// One page of notes, oldest first, through loco's `query::fetch_page`, which is generic
    /// over the connection (unlike `query::paginate`, typed to `&DatabaseConnection`): two
    /// reads, a count and the page.
    pub async fn page<C: ConnectionTrait + Sync>(
        db: &C,
        page: &PaginationQuery,
    ) -> loco_rs::Result<PageResponse<Model>> {
        query::fetch_page(db, Entity::find().order_by_asc(Column::Id), page).await
    }
}
