//! The application's models: entities and their queries, written against any
//! [`ConnectionTrait`](sea_orm::ConnectionTrait) so that the same code runs on the
//! [`RoutedConnection`](rwsplit_sea_orm::RoutedConnection), on loco's `ctx.db`, inside a
//! transaction, or on a `Session`.

pub mod notes;
