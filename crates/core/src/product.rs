//! The database products rwsplit runs on: the one list every crate's product seam dispatches
//! on, with what is pure about each product (names, dialect, token kind).

use std::fmt;

use crate::classify::Dialect;

/// A database product rwsplit routes for, with replication positions of its own: the one list
/// of products. The monitor (its `Flavor`) and the adapter choose their per-product module by
/// it, and a causal token's kind ([`TokenKind`]) is the product its position comes from.
///
/// Matching on it is exhaustive on purpose: a product added here is a compile error in every
/// crate's seam until that crate has its module for it.
///
/// ```
/// use rwsplit_core::{CausalToken, Product, TokenKind};
/// let t = CausalToken::parse_for("mariadb:1:0-1-208", TokenKind::MariaDb)?;
/// assert_eq!(t.kind(), Product::MariaDb);
/// assert_eq!(t.kind().name(), "MariaDB");
/// let err = CausalToken::parse_for("mariadb:1:0-1-208", TokenKind::Postgres).unwrap_err();
/// assert_eq!(err.to_string(), "causal token of kind `mariadb` where a `pg` token is expected");
/// # Ok::<(), rwsplit_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Product {
    /// PostgreSQL, physical streaming replication (`pg:` tokens).
    Postgres,
    /// MariaDB with GTID replication (`mariadb:` tokens).
    MariaDb,
}

/// The database a causal token or replay position belongs to: the product it comes from, whose
/// short name is the `<kind>` of the token's text form.
///
/// An adapter connected to one product passes it to
/// [`CausalToken::parse_for`](crate::CausalToken::parse_for), so that a token of another kind
/// (say `mariadb:` text sent to a PostgreSQL application) is refused with an error instead of
/// being accepted and never satisfied.
pub type TokenKind = Product;

/// What is pure about one product: one row of the list.
#[derive(Debug)]
struct Facts {
    /// The `<kind>` of a causal token's text form.
    short: &'static str,
    /// As people write it.
    name: &'static str,
    /// OpenTelemetry's `db.system.name`.
    system_name: &'static str,
    /// How the classifier lexes its statements.
    dialect: Dialect,
    /// Whether its replicas refuse SERIALIZABLE transactions.
    replicas_refuse_serializable: bool,
}

impl Product {
    /// Every product, in the order a lookup by something they share (a protocol) prefers them.
    pub const ALL: [Product; 2] = [Product::Postgres, Product::MariaDb];

    /// The list: one row per product.
    const fn facts(self) -> &'static Facts {
        match self {
            Self::Postgres => &Facts {
                short: "pg",
                name: "PostgreSQL",
                system_name: "postgresql",
                dialect: Dialect::Postgres,
                replicas_refuse_serializable: true,
            },
            Self::MariaDb => &Facts {
                short: "mariadb",
                name: "MariaDB",
                system_name: "mariadb",
                dialect: Dialect::MySql,
                replicas_refuse_serializable: false,
            },
        }
    }

    /// The product's short name, the `<kind>` of a causal token's text form: `pg` or
    /// `mariadb`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        self.facts().short
    }

    /// The product's name as people write it: `PostgreSQL`, `MariaDB`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        self.facts().name
    }

    /// OpenTelemetry's `db.system.name`: `postgresql`, `mariadb`.
    #[must_use]
    pub const fn system_name(self) -> &'static str {
        self.facts().system_name
    }

    /// The classifier's SQL dialect for its statements.
    #[must_use]
    pub const fn dialect(self) -> Dialect {
        self.facts().dialect
    }

    /// Whether its replicas refuse SERIALIZABLE transactions (PostgreSQL hot standbys do), so a
    /// read-only one must stay on the primary.
    #[must_use]
    pub const fn replicas_refuse_serializable(self) -> bool {
        self.facts().replicas_refuse_serializable
    }

    /// The product whose short name ([`Product::as_str`]) is `name`, if any.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl fmt::Display for Product {
    /// The short name ([`Product::as_str`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_product_once() {
        for (i, p) in Product::ALL.into_iter().enumerate() {
            // Exhaustive: a new product fails to compile here until it is in `ALL`.
            let listed = match p {
                Product::Postgres | Product::MariaDb => Product::ALL[i + 1..].contains(&p),
            };
            assert!(!listed, "{p:?} twice in ALL");
        }
        assert_eq!(Product::ALL.len(), 2);
    }

    #[test]
    fn every_product_is_found_by_its_short_name() {
        for p in Product::ALL {
            assert_eq!(Product::from_name(p.as_str()), Some(p));
        }
        assert_eq!(Product::from_name("mysql"), None);
    }
}
