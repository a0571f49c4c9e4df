//! A tiny blog schema shared by the examples and the integration tests: authors and their
//! posts, and the migration that creates them.

#![allow(dead_code, unreachable_pub)]

/// Authors.
pub mod author {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "author")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(has_many = "super::post::Entity")]
        Post,
    }

    impl Related<super::post::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Post.def()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// Posts, each by one author.
pub mod post {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "post")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub author_id: i32,
        #[sea_orm(unique)]
        pub title: String,
        pub views: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(
            belongs_to = "super::author::Entity",
            from = "Column::AuthorId",
            to = "super::author::Column::Id"
        )]
        Author,
    }

    impl Related<super::author::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Author.def()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// The migrations: `Migrator::up(db.primary(), None)`.
pub mod migration {
    use sea_orm_migration::prelude::*;

    /// Every migration, in order.
    pub struct Migrator;

    impl MigratorTrait for Migrator {
        fn migrations() -> Vec<Box<dyn MigrationTrait>> {
            vec![Box::new(CreateBlog)]
        }
    }

    #[derive(DeriveMigrationName)]
    struct CreateBlog;

    #[derive(DeriveIden)]
    enum Author {
        Table,
        Id,
        Name,
    }

    #[derive(DeriveIden)]
    enum Post {
        Table,
        Id,
        AuthorId,
        Title,
        Views,
    }

    // `async_trait` needs the trait's exact signature, which elides `SchemaManager`'s lifetime.
    #[allow(elided_lifetimes_in_paths)]
    #[async_trait::async_trait]
    impl MigrationTrait for CreateBlog {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_table(
                    Table::create()
                        .table(Author::Table)
                        .col(
                            ColumnDef::new(Author::Id)
                                .integer()
                                .not_null()
                                .auto_increment()
                                .primary_key(),
                        )
                        .col(ColumnDef::new(Author::Name).string_len(100).not_null())
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(Post::Table)
                        .col(
                            ColumnDef::new(Post::Id)
                                .integer()
                                .not_null()
                                .auto_increment()
                                .primary_key(),
                        )
                        .col(ColumnDef::new(Post::AuthorId).integer().not_null())
                        .col(ColumnDef::new(Post::Title).string_len(200).not_null().unique_key())
                        .col(ColumnDef::new(Post::Views).integer().not_null().default(0))
                        .foreign_key(
                            ForeignKey::create()
                                .from(Post::Table, Post::AuthorId)
                                .to(Author::Table, Author::Id)
                                .on_delete(ForeignKeyAction::Cascade),
                        )
                        .to_owned(),
                )
                .await
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager.drop_table(Table::drop().table(Post::Table).to_owned()).await?;
            manager.drop_table(Table::drop().table(Author::Table).to_owned()).await
        }
    }
}
