//! The schema: one migration creating `notes`. loco runs it at boot (`auto_migrate: true` in
//! config/*.yaml) on `ctx.db`, its own connection to the primary; the replicas get it by
//! replication.

use sea_orm_migration::prelude::*;

/// Every migration, in order; `create_app::<App, Migrator>` in [`App::boot`](crate::App)
/// applies them.
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
enum Notes {
    Table,
    Id,
    Text,
}

// `async_trait` (re-exported by sea-orm-migration's prelude) needs the trait's exact
// signature, which elides `SchemaManager`'s lifetime.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for CreateNotes {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Notes::Table)
                    .col(
                        ColumnDef::new(Notes::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Notes::Text).text().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Notes::Table).to_owned()).await
    }
}
