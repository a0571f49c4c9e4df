//! The glue between loco's configuration and rwsplit: the [`RoutedConnection`] built from
//! `database.uri` and the `settings:` block, and the [`SessionLayer`] that carries each
//! client's read-your-writes token between its requests.
//!
//! ```yaml
//! # config/production.yaml
//! database:
//!   uri: <%= get_env(name="DATABASE_URL") %>        # the primary, as for any loco app
//! settings:
//!   token_key: '<%= get_env(name="RWSPLIT_TOKEN_KEY") %>'
//!   rwsplit:                                        # rwsplit's RoutedConfig, without `primary`
//!     replicas:
//!       - url: <%= get_env(name="REPLICA_1_DATABASE_URL") %>
//!       - url: <%= get_env(name="REPLICA_2_DATABASE_URL") %>
//!     policy:
//!       wait_for_replica: 20ms
//! ```

use std::fmt;

use loco_rs::config::Config;
use loco_rs::{Error, Result};
use rwsplit_axum::{SessionLayer, SigningKey, TokenEnvelope};
use rwsplit_sea_orm::{RoutedConfig, RoutedConnection};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The `settings:` block of config/*.yaml, as this application reads it
/// ([`Settings::from_config`]). Unknown keys are errors, as they are inside `rwsplit`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Settings {
    /// The key that signs the read-your-writes tokens sent to clients (HMAC-SHA256; 32 bytes
    /// or more, the same on every instance of the application). From the environment, never
    /// committed: `token_key: <%= get_env(name="RWSPLIT_TOKEN_KEY") %>`.
    pub token_key: String,
    /// rwsplit's configuration, [`RoutedConfig`], without its `primary`: `replicas` (each a
    /// `url` and optionally `weight`, `zone`, `tags`, `pooling`, `pool`), `pool`, `router`,
    /// `policy`, `monitor`, `topology`, checked field by field when the application boots.
    /// The primary is loco's own `database.uri`.
    #[serde(default)]
    pub rwsplit: Map<String, Value>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key is a secret and replica URLs may hold passwords: neither is printed.
        f.debug_struct("Settings")
            .field("token_key", &"..")
            .field("rwsplit", &self.rwsplit.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Settings {
    /// Reads the `settings:` block of loco's configuration.
    pub fn from_config(config: &Config) -> Result<Settings> {
        config.settings::<Settings>().map_err(|e| Error::Message(format!("settings: {e}")))
    }

    /// The router's configuration: `settings.rwsplit`, with loco's `database.uri` as the
    /// primary. A `primary` inside `settings.rwsplit` is refused: two places for one URL would
    /// let them disagree.
    pub fn routed_config(&self, config: &Config) -> Result<RoutedConfig> {
        if self.rwsplit.contains_key("primary") {
            return Err(Error::Message(
                "settings.rwsplit.primary: the primary is `database.uri`; remove it here".into(),
            ));
        }
        let mut block = self.rwsplit.clone();
        block.insert("primary".into(), json!({ "url": config.database.uri }));
        serde_json::from_value(Value::Object(block))
            .map_err(|e| Error::Message(format!("settings.rwsplit: {e}")))
    }

    /// The layer that resumes each request's read-your-writes session from the client's
    /// signed token (cookie `rwsplit_token` or header `x-rwsplit-token`) and sends the new
    /// token back after a write.
    pub fn session_layer(&self, db: RoutedConnection) -> Result<SessionLayer> {
        let key = SigningKey::new(&self.token_key)
            .map_err(|e| Error::Message(format!("settings.token_key: {e}")))?;
        SessionLayer::builder(db, TokenEnvelope::signed(key))
            .build()
            .map_err(|e| Error::Message(format!("settings.rwsplit session layer: {e}")))
    }
}

/// Connects the router: the primary at `database.uri`, the replicas and policy from
/// `settings.rwsplit`. A replica that does not answer yet is left out of rotation with a
/// warning (and probed until it does); an unreachable primary is an error.
pub async fn connect(config: &Config) -> Result<RoutedConnection> {
    Settings::from_config(config)?.routed_config(config)?.connect().await.map_err(Error::wrap)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(settings: Value) -> Config {
        let mut config = loco_rs::environment::Environment::Test
            .load_from_folder(std::path::Path::new("config"))
            .unwrap();
        config.database.uri = "postgres://app@primary:5432/app".into();
        config.settings = Some(settings);
        config
    }

    #[test]
    fn the_primary_is_the_database_uri_and_the_rest_is_rwsplits() {
        let c = config(json!({
            "token_key": "k",
            "rwsplit": {
                "replicas": [{ "url": "postgres://app@replica:5432/app", "weight": 2 }],
                "router": { "balancer": "weighted_round_robin" },
                "policy": { "wait_for_replica": "20ms" },
            },
        }));
        let routed = Settings::from_config(&c).unwrap().routed_config(&c).unwrap();
        assert_eq!(routed.primary.url, "postgres://app@primary:5432/app");
        assert_eq!(routed.replicas[0].weight, 2);
        assert_eq!(routed.policy.wait_for_replica, Some(std::time::Duration::from_millis(20)));
        routed.validate().unwrap();
    }

    #[test]
    fn mistakes_name_their_place() {
        let c = config(json!({ "token_key": "k", "rwsplit": { "primary": { "url": "x" } } }));
        let e = Settings::from_config(&c).unwrap().routed_config(&c).unwrap_err().to_string();
        assert!(e.starts_with("settings.rwsplit.primary:"), "{e}");

        let c = config(json!({ "token_key": "k", "rwsplit": { "replica": [] } }));
        let e = Settings::from_config(&c).unwrap().routed_config(&c).unwrap_err().to_string();
        assert!(e.contains("settings.rwsplit: unknown field `replica`"), "{e}");

        let c = config(json!({ "token_key": "short", "rwsplit": {} }));
        let settings = Settings::from_config(&c).unwrap();
        assert!(format!("{settings:?}").contains("token_key: \"..\""));

        let c = config(json!({ "rwsplit": {} }));
        let e = Settings::from_config(&c).unwrap_err().to_string();
        assert!(e.contains("missing field `token_key`"), "{e}");
    }
}
