//! [`App`]: loco's hooks, where the router is built and the read-your-writes layer added.

use std::path::Path;

use loco_rs::app::{AppContext, Hooks};
use loco_rs::bgworker::Queue;
use loco_rs::boot::{BootResult, StartMode, create_app};
use loco_rs::config::Config;
use loco_rs::controller::AppRoutes;
use loco_rs::db::{seed, truncate_table};
use loco_rs::environment::Environment;
use loco_rs::prelude::async_trait;
use loco_rs::task::Tasks;
use loco_rs::{Error, Result};
use rwsplit_sea_orm::RoutedConnection;

use crate::routed::{self, Settings};
use crate::{Migrator, controllers, models::notes};

/// The application.
#[derive(Debug)]
pub struct App;

#[async_trait]
impl Hooks for App {
    fn app_name() -> &'static str {
        env!("CARGO_CRATE_NAME")
    }

    fn app_version() -> String {
        env!("CARGO_PKG_VERSION").to_owned()
    }

    /// loco connects `ctx.db` to `database.uri`, calls [`after_context`](Self::after_context),
    /// runs the migrations on `ctx.db` (`auto_migrate`), then builds the routes.
    async fn boot(
        mode: StartMode,
        environment: &Environment,
        config: Config,
    ) -> Result<BootResult> {
        create_app::<Self, Migrator>(mode, environment, config).await
    }

    /// Connects the router (the primary at `database.uri`, replicas from `settings.rwsplit`)
    /// and puts it in the shared store, where handlers take it with
    /// `SharedStore<RoutedConnection>`. `ctx.db` stays loco's own connection to the primary.
    async fn after_context(ctx: AppContext) -> Result<AppContext> {
        let db = routed::connect(&ctx.config).await?;
        ctx.shared_store.insert(db);
        Ok(ctx)
    }

    fn routes(_ctx: &AppContext) -> AppRoutes {
        AppRoutes::with_default_routes().add_route(controllers::notes::routes())
    }

    /// Wraps every route in the read-your-writes layer: a client that wrote in one request
    /// reads its write in the next, wherever that request lands.
    async fn after_routes(router: axum::Router, ctx: &AppContext) -> Result<axum::Router> {
        let db = ctx
            .shared_store
            .get::<RoutedConnection>()
            .ok_or_else(|| Error::Message("no RoutedConnection in the shared store".into()))?;
        Ok(router.layer(Settings::from_config(&ctx.config)?.session_layer(db)?))
    }

    async fn connect_workers(_ctx: &AppContext, _queue: &Queue) -> Result<()> {
        // No background workers in this application.
        Ok(())
    }

    fn register_tasks(_tasks: &mut Tasks) {
        // No tasks in this application.
    }

    /// `dangerously_truncate`: on `ctx.db`, the primary.
    async fn truncate(ctx: &AppContext) -> Result<()> {
        truncate_table(&ctx.db, notes::Entity).await?;
        Ok(())
    }

    /// Seeds `notes` from `<base>/notes.yaml` (`src/fixtures` in loco's testing helpers), on
    /// `ctx.db`: the primary.
    async fn seed(ctx: &AppContext, base: &Path) -> Result<()> {
        seed::<notes::ActiveModel>(&ctx.db, &base.join("notes.yaml").to_string_lossy()).await
    }

    /// Closes the router's pools (loco closes nothing of its own here).
    async fn on_shutdown(ctx: &AppContext) {
        if let Some(db) = ctx.shared_store.remove::<RoutedConnection>()
            && let Err(e) = db.close().await
        {
            tracing::warn!("closing the router's pools: {e}");
        }
    }
}
