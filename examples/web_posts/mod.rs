//! One small posts app (list with pagination, create, edit, delete, flash messages) as SeaORM's
//! own `actix_example` and `poem_example` write it, for each framework twice: `*_before` on
//! plain SeaORM (`DatabaseConnection`), `*_after` moved over to rwsplit (`RoutedConnection`,
//! the migration on `db.primary()`, `rwsplit-web`'s `SessionMiddleware`). What the move leaves
//! alone (the entity, the migration, the HTML, the flash helpers) is in [`common`], so that each
//! pair differs by the move only. Used by `examples/tests/web_posts.rs`, which drives them as
//! browsers would on a primary and two lagging replicas and counts the lines the move changed.

#![allow(dead_code, unreachable_pub)]

pub mod actix_after;
pub mod actix_before;
pub mod common;
pub mod poem_after;
pub mod poem_before;
