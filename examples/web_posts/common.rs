//! What moving the posts apps over leaves alone: the posts table (its entity and migration),
//! the query parameters, the flash messages and the HTML (plain `format!`, where SeaORM's
//! examples use tera templates). Every app of [`super`] shares it.

/// Posts per page when the query does not say.
pub const DEFAULT_POSTS_PER_PAGE: u64 = 5;

/// The flash message's cookie: set by a `POST` with its redirect, shown once by the next page,
/// which clears it.
pub const FLASH: &str = "flash";

/// The flash message after a post was created (the cookie's value; `+` is a space).
pub const CREATED: &str = "Post+created";
/// The flash message after a post was updated.
pub const UPDATED: &str = "Post+updated";
/// The flash message after a post was deleted.
pub const DELETED: &str = "Post+deleted";

/// The posts table.
pub mod post {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A post; also the form that creates or updates one (`title`, `text`).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Deserialize, Serialize)]
    #[sea_orm(table_name = "post")]
    pub struct Model {
        /// Its id (not in the form).
        #[sea_orm(primary_key)]
        #[serde(skip_deserializing)]
        pub id: i32,
        /// Its title.
        pub title: String,
        /// What it says.
        #[sea_orm(column_type = "Text")]
        pub text: String,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The list's query: `?page=N&posts_per_page=M`.
#[derive(Debug, serde::Deserialize)]
pub struct Params {
    /// The page, from 1.
    pub page: Option<u64>,
    /// Posts per page.
    pub posts_per_page: Option<u64>,
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
            vec![Box::new(CreatePostTable)]
        }
    }

    #[derive(DeriveMigrationName)]
    struct CreatePostTable;

    #[derive(DeriveIden)]
    enum Post {
        Table,
        Id,
        Title,
        Text,
    }

    // `async_trait` needs the trait's exact signature, which elides `SchemaManager`'s lifetime.
    #[allow(elided_lifetimes_in_paths)]
    #[async_trait::async_trait]
    impl MigrationTrait for CreatePostTable {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            let mut id = ColumnDef::new(Post::Id);
            id.integer().not_null().auto_increment().primary_key();
            manager
                .create_table(
                    Table::create()
                        .table(Post::Table)
                        .col(id)
                        .col(ColumnDef::new(Post::Title).string().not_null())
                        .col(ColumnDef::new(Post::Text).text().not_null())
                        .to_owned(),
                )
                .await
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager.drop_table(Table::drop().table(Post::Table).to_owned()).await
        }
    }
}

/// The pages, as HTML.
pub mod html {
    use super::post;

    /// `text` with `&`, `<`, `>` and `"` escaped.
    fn escape(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '"' => out.push_str("&quot;"),
                c => out.push(c),
            }
        }
        out
    }

    /// The page around `body`, with the flash message's cookie value if there is one.
    fn layout(title: &str, flash: Option<&str>, body: &str) -> String {
        let flash = flash
            .map(|f| format!("<p class=\"flash\">{}</p>\n", escape(&f.replace('+', " "))))
            .unwrap_or_default();
        format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title></head>\n\
             <body>\n{flash}{body}</body></html>\n",
            escape(title)
        )
    }

    /// The list: page `page` of `num_pages`, newest first.
    pub fn index(posts: &[post::Model], page: u64, num_pages: u64, flash: Option<&str>) -> String {
        let mut rows = String::new();
        for p in posts {
            rows.push_str(&format!(
                "<tr><td>{id}</td><td><a href=\"/{id}\">{}</a></td><td>{}</td></tr>\n",
                escape(&p.title),
                escape(&p.text),
                id = p.id,
            ));
        }
        let prev = if page > 1 {
            format!("<a href=\"/?page={}\">Previous</a> ", page - 1)
        } else {
            String::new()
        };
        let next = if page < num_pages {
            format!(" <a href=\"/?page={}\">Next</a>", page + 1)
        } else {
            String::new()
        };
        let body = format!(
            "<h1>Posts</h1>\n<table>\n<tr><th>ID</th><th>Title</th><th>Text</th></tr>\n{rows}\
             </table>\n<p>{prev}Page {page} of {num_pages}{next}</p>\n\
             <p><a href=\"/new\">New post</a></p>\n"
        );
        layout("Posts", flash, &body)
    }

    /// The form for a new post.
    pub fn new_post() -> String {
        let body = "<h1>New post</h1>\n<form action=\"/\" method=\"post\">\n\
                    <input name=\"title\" placeholder=\"Title\" required>\n\
                    <textarea name=\"text\" placeholder=\"Text\" required></textarea>\n\
                    <button type=\"submit\">Save</button>\n</form>\n";
        layout("New post", None, body)
    }

    /// The edit page: the post's title and text in a form, and a delete button.
    pub fn edit(post: &post::Model, flash: Option<&str>) -> String {
        let body = format!(
            "<h1>Edit post {id}</h1>\n<form action=\"/{id}\" method=\"post\">\n\
             <input name=\"title\" value=\"{}\" required>\n\
             <textarea name=\"text\" required>{}</textarea>\n\
             <button type=\"submit\">Save</button>\n</form>\n\
             <form action=\"/delete/{id}\" method=\"post\"><button type=\"submit\">Delete</button></form>\n\
             <p><a href=\"/\">Back</a></p>\n",
            escape(&post.title),
            escape(&post.text),
            id = post.id,
        );
        layout(&format!("Edit post {}", post.id), flash, &body)
    }

    /// The page for a path with nothing there.
    pub fn not_found(uri: &str) -> String {
        layout("Not found", None, &format!("<h1>Not found</h1>\n<p>{}</p>\n", escape(uri)))
    }
}
