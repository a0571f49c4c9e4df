//! What moving the app over leaves alone: the notes table (its entity and migration), the
//! request and response types, the error type. [`before`](super::before) and
//! [`after`](super::after) share it.

/// The notes table.
pub mod note {
    use sea_orm::entity::prelude::*;

    /// A note.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
    #[sea_orm(table_name = "note")]
    pub struct Model {
        /// Its id.
        #[sea_orm(primary_key)]
        pub id: i32,
        /// What it says.
        pub text: String,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A note as the API returns it.
pub type Note = note::Model;

/// A note as the API takes it.
#[derive(Debug, serde::Deserialize)]
pub struct NewNote {
    /// What it says.
    pub text: String,
}

/// A database error as a `500` response.
#[derive(Debug)]
pub struct AppError(sea_orm::DbErr);

impl From<sea_orm::DbErr> for AppError {
    fn from(e: sea_orm::DbErr) -> Self {
        AppError(e)
    }
}

impl axum::response::IntoResponse for AppError {
    fn into_response(self) -> axum::response::Response {
        (axum::http::StatusCode::INTERNAL_SERVER_ERROR, self.0.to_string()).into_response()
    }
}

pub use migration::Migrator;

/// The migration that creates the table.
pub mod migration {
    use sea_orm_migration::prelude::*;

    /// Every migration, in order.
    #[derive(Debug)]
    pub struct Migrator;

    impl MigratorTrait for Migrator {
        fn migrations() -> Vec<Box<dyn MigrationTrait>> {
            vec![Box::new(CreateNotes)]
        }
    }

    #[derive(DeriveMigrationName)]
    struct CreateNotes;

    #[derive(DeriveIden)]
    enum Note {
        Table,
        Id,
        Text,
    }

    // `async_trait` needs the trait's exact signature, which elides `SchemaManager`'s lifetime.
    #[allow(elided_lifetimes_in_paths)]
    #[async_trait::async_trait]
    impl MigrationTrait for CreateNotes {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            let mut id = ColumnDef::new(Note::Id);
            id.integer().not_null().auto_increment().primary_key();
            manager
                .create_table(
                    Table::create()
                        .table(Note::Table)
                        .col(id)
                        .col(ColumnDef::new(Note::Text).text().not_null())
                        .to_owned(),
                )
                .await
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager.drop_table(Table::drop().table(Note::Table).to_owned()).await
        }
    }
}
