//! Routing rules: send some reads to a group of replicas, or to the primary.
//!
//! Rules run only for reads (writes always go to the primary) and only when configured, in
//! order; the first that returns an action decides. The built-in [`TableRule`] looks at the
//! tables a statement names (lexing the text once more, only when the rule runs), and
//! [`TagRule`] at the statement's `/*rwsplit:tag=…*/` comment and the context's tags.

use std::fmt;

use super::context::RouteContext;

/// What a matching rule does with a read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RuleAction<'r> {
    /// Run it on the primary.
    Primary,
    /// Run it only on replicas carrying this tag (then the primary, if allowed).
    OnlyTagged(&'r str),
    /// Prefer replicas carrying this tag; other eligible replicas are fallbacks.
    PreferTagged(&'r str),
}

/// A routing rule. Must not allocate or block: it runs on every routed read.
///
/// ```
/// use std::time::Instant;
/// use rwsplit_core::{Access, RouteContext, Rule, RuleAction, Transaction};
///
/// /// Reads inside read-only transactions go to the reporting replicas.
/// #[derive(Debug)]
/// struct Reporting;
///
/// impl Rule for Reporting {
///     fn route<'r>(&'r self, ctx: &RouteContext<'_>) -> Option<RuleAction<'r>> {
///         (ctx.transaction() == Transaction::ReadOnly).then_some(RuleAction::OnlyTagged("reporting"))
///     }
/// }
///
/// let ctx = RouteContext::for_access(Access::Read, Instant::now()).with_transaction(Transaction::ReadOnly);
/// assert_eq!(Reporting.route(&ctx), Some(RuleAction::OnlyTagged("reporting")));
/// ```
pub trait Rule: Send + Sync + fmt::Debug {
    /// The action for this read, or `None` if the rule does not apply.
    fn route<'r>(&'r self, ctx: &RouteContext<'_>) -> Option<RuleAction<'r>>;
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Action {
    Primary,
    Only(Box<str>),
    Prefer(Box<str>),
}

impl Action {
    fn borrow(&self) -> RuleAction<'_> {
        match self {
            Self::Primary => RuleAction::Primary,
            Self::Only(t) => RuleAction::OnlyTagged(t),
            Self::Prefer(t) => RuleAction::PreferTagged(t),
        }
    }
}

/// Routes reads that name any of some tables (compared ASCII-case-insensitively, without
/// schema or quotes). Needs the statement text in the context
/// ([`RouteContext::with_statement`]).
///
/// ```
/// use std::time::Instant;
/// use rwsplit_core::{Dialect, RouteContext, Rule, RuleAction, TableRule, explain};
/// let rule = TableRule::only_tagged(["events", "page_views"], "analytics");
/// let sql = r#"SELECT count(*) FROM "public"."Events""#;
/// let c = explain(sql, Dialect::Postgres);
/// let ctx = RouteContext::new(&c, Instant::now()).with_statement(sql, Dialect::Postgres);
/// assert_eq!(rule.route(&ctx), Some(RuleAction::OnlyTagged("analytics")));
/// ```
#[derive(Clone, Debug)]
pub struct TableRule {
    tables: Box<[Box<str>]>,
    action: Action,
}

impl TableRule {
    fn new<I, S>(tables: I, action: Action) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Box<str>>,
    {
        Self { tables: tables.into_iter().map(Into::into).collect(), action }
    }

    /// Reads of these tables go to the primary.
    #[must_use]
    pub fn primary<I: IntoIterator<Item = S>, S: Into<Box<str>>>(tables: I) -> Self {
        Self::new(tables, Action::Primary)
    }

    /// Reads of these tables go only to replicas tagged `tag`.
    #[must_use]
    pub fn only_tagged<I: IntoIterator<Item = S>, S: Into<Box<str>>>(
        tables: I,
        tag: impl Into<Box<str>>,
    ) -> Self {
        Self::new(tables, Action::Only(tag.into()))
    }

    /// Reads of these tables prefer replicas tagged `tag`.
    #[must_use]
    pub fn prefer_tagged<I: IntoIterator<Item = S>, S: Into<Box<str>>>(
        tables: I,
        tag: impl Into<Box<str>>,
    ) -> Self {
        Self::new(tables, Action::Prefer(tag.into()))
    }
}

impl Rule for TableRule {
    fn route<'r>(&'r self, ctx: &RouteContext<'_>) -> Option<RuleAction<'r>> {
        let mut names = ctx.tables()?;
        names
            .any(|t| self.tables.iter().any(|want| want.eq_ignore_ascii_case(t)))
            .then(|| self.action.borrow())
    }
}

/// Routes reads carrying a tag: the statement's `/*rwsplit:tag=…*/` comment or a context tag
/// ([`RouteContext::with_tags`]).
///
/// ```
/// use std::time::Instant;
/// use rwsplit_core::{Dialect, RouteContext, Rule, RuleAction, TagRule, explain};
/// let rule = TagRule::only_tagged("analytics", "olap");
/// let c = explain("/*rwsplit:tag=analytics*/ SELECT 1", Dialect::Postgres);
/// assert_eq!(rule.route(&RouteContext::new(&c, Instant::now())), Some(RuleAction::OnlyTagged("olap")));
/// ```
#[derive(Clone, Debug)]
pub struct TagRule {
    tag: Box<str>,
    action: Action,
}

impl TagRule {
    /// Reads tagged `tag` go to the primary.
    #[must_use]
    pub fn primary(tag: impl Into<Box<str>>) -> Self {
        Self { tag: tag.into(), action: Action::Primary }
    }

    /// Reads tagged `tag` go only to replicas tagged `replica_tag`.
    #[must_use]
    pub fn only_tagged(tag: impl Into<Box<str>>, replica_tag: impl Into<Box<str>>) -> Self {
        Self { tag: tag.into(), action: Action::Only(replica_tag.into()) }
    }

    /// Reads tagged `tag` prefer replicas tagged `replica_tag`.
    #[must_use]
    pub fn prefer_tagged(tag: impl Into<Box<str>>, replica_tag: impl Into<Box<str>>) -> Self {
        Self { tag: tag.into(), action: Action::Prefer(replica_tag.into()) }
    }
}

impl Rule for TagRule {
    fn route<'r>(&'r self, ctx: &RouteContext<'_>) -> Option<RuleAction<'r>> {
        ctx.has_tag(&self.tag).then(|| self.action.borrow())
    }
}
