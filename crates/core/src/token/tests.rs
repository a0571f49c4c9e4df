//! Truth tables and properties for positions and tokens.

use proptest::prelude::*;
use rstest::rstest;

use super::*;

fn tok(s: &str) -> CausalToken {
    s.parse().unwrap()
}

fn pos(s: &str) -> ReplayPosition {
    s.parse().unwrap()
}

#[rstest]
#[case("pg:1:1:1:0-10", "pg:1:1:1:0-10", Some(0))]
#[case("pg:1:1:1:0-10", "pg:1:1:1:0-F", Some(1))]
#[case("pg:1:1:1:0-10", "pg:1:1:1:1-0", Some(0))]
#[case("pg:1:1:1:1-0", "pg:1:1:1:0-FFFFFFFF", Some(1))]
#[case("pg:1:1:1:0-10", "pg:1:1:2:9-0", None)]
#[case("pg:1:1:2:0-10", "pg:1:1:1:9-0", None)]
#[case("pg:1:1:1:0-10", "pg:1:2:1:9-0", None)]
#[case("mariadb:1:0-1-208", "mariadb:1:0-1-208", Some(0))]
#[case("mariadb:1:0-1-208", "mariadb:1:0-1-300", Some(0))]
#[case("mariadb:1:0-1-208", "mariadb:1:0-1-200", Some(8))]
#[case("mariadb:1:0-1-208", "mariadb:1:0-2-300", None)]
#[case("mariadb:1:0-1-208.1-2-5", "mariadb:1:0-1-208", Some(5))]
#[case("mariadb:1:0-1-208.1-2-5", "mariadb:1:0-1-210.1-2-6.2-3-4", Some(0))]
#[case("mariadb:1:", "mariadb:1:0-1-1", Some(0))]
#[case("mariadb:1:", "mariadb:1:", Some(0))]
#[case("pg:1:1:1:0-10", "mariadb:1:0-1-1", None)]
#[case("mariadb:1:", "pg:1:1:1:0-10", None)]
fn satisfaction(#[case] token: &str, #[case] replayed: &str, #[case] shortfall: Option<u64>) {
    let t = tok(token);
    let r = pos(replayed);
    assert_eq!(t.shortfall(&r), shortfall, "{token} vs {replayed}");
    assert_eq!(t.is_satisfied_by(&r), shortfall == Some(0));
}

#[rstest]
#[case("pg:1:1:1:0-10", "pg:1:1:1:0-20", "pg:1:1:1:0-20")]
#[case("pg:1:1:1:0-20", "pg:1:1:1:0-10", "pg:1:1:1:0-20")]
#[case("pg:1:1:1:5-0", "pg:1:1:2:0-10", "pg:1:1:2:0-10")]
#[case("pg:1:1:2:0-10", "pg:1:1:1:5-0", "pg:1:1:2:0-10")]
#[case("pg:1:1:1:5-0", "pg:1:2:1:0-1", "pg:1:2:1:0-1")]
#[case("mariadb:1:0-1-5.1-1-9", "mariadb:1:0-1-7.2-1-1", "mariadb:1:0-1-7.1-1-9.2-1-1")]
#[case("mariadb:1:0-1-5", "mariadb:1:0-2-5", "mariadb:1:0-2-5")]
#[case("mariadb:1:0-2-5", "mariadb:1:0-1-5", "mariadb:1:0-2-5")]
#[case("mariadb:1:0-2-9", "mariadb:1:0-1-5", "mariadb:1:0-2-9")]
#[case("pg:1:1:1:0-10", "mariadb:1:", "mariadb:1:")]
#[case("mariadb:1:", "pg:1:1:1:0-10", "pg:1:1:1:0-10")]
fn merging(#[case] a: &str, #[case] b: &str, #[case] want: &str) {
    assert_eq!(tok(a).merged(&tok(b)).to_string(), want);
}

#[rstest]
#[case("", "causal token has an unknown kind ``")]
#[case("foo:1:x", "causal token has an unknown kind `foo`")]
#[case("PG:1:1:1:0-1", "causal token has an unknown kind `PG`")]
#[case(
    "pg",
    "malformed `pg` causal token `pg`: expected `pg:1:<system id>:<timeline>:<lsn hi>-<lsn lo>`"
)]
#[case(
    "pg:1",
    "malformed `pg` causal token `pg:1`: expected `pg:1:<system id>:<timeline>:<lsn hi>-<lsn lo>`"
)]
#[case("pg:2:1:1:0-1", "causal token version `2` is not supported for kind `pg`")]
#[case("pg:2", "causal token version `2` is not supported for kind `pg`")]
#[case(
    "pg:1:1:1",
    "malformed `pg` causal token `pg:1:1:1`: expected `pg:1:<system id>:<timeline>:<lsn hi>-<lsn lo>`"
)]
#[case(
    "pg:1:1:1:0-1:9",
    "malformed `pg` causal token `pg:1:1:1:0-1:9`: expected `pg:1:<system id>:<timeline>:<lsn hi>-<lsn lo>`"
)]
#[case("pg:1:x:1:0-1", "invalid system identifier `x`")]
#[case("pg:1:+1:1:0-1", "invalid system identifier `+1`")]
#[case("pg:1:1:4294967296:0-1", "invalid timeline `4294967296`")]
#[case("pg:1:1:1:xyz", "invalid LSN `xyz`")]
#[case("pg:1:1:1:0/1", "invalid LSN `0/1`")]
#[case("pg:1:1:1:123456789-0", "invalid LSN `123456789-0`")]
#[case("mariadb:1:0-1", "invalid GTID `0-1`")]
#[case("mariadb:1:0-1-1,1-1-1", "invalid GTID `0-1-1,1-1-1`")]
#[case("mysql:1:", "causal token has an unknown kind `mysql`")]
fn parse_errors(#[case] text: &str, #[case] message: &str) {
    let err = text.parse::<CausalToken>().unwrap_err();
    assert_eq!(err.to_string(), message);
}

#[test]
fn long_garbage_is_truncated_in_errors() {
    let text = format!("x{}", "y".repeat(10_000));
    let err = text.parse::<CausalToken>().unwrap_err();
    assert!(err.to_string().len() < 120);
}

#[test]
fn lsn_text() {
    assert_eq!("0/0".parse::<Lsn>().unwrap(), Lsn::new(0));
    assert_eq!("FFFFFFFF/FFFFFFFF".parse::<Lsn>().unwrap(), Lsn::new(u64::MAX));
    assert_eq!(" 1/a ".parse::<Lsn>().unwrap().to_string(), "1/A");
    for bad in ["", "/", "1/", "/1", "1/2/3", "g/1", "123456789/0", "-1/0", "1 /0"] {
        assert!(bad.parse::<Lsn>().is_err(), "{bad}");
    }
}

#[test]
fn token_text_is_cookie_and_url_safe() {
    let tokens = [
        tok("pg:1:18446744073709551615:4294967295:FFFFFFFF-FFFFFFFF"),
        tok("mariadb:1:0-1-208.1-2-5.4294967295-4294967295-18446744073709551615"),
    ];
    for t in tokens {
        let s = t.to_string();
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:_".contains(&b)), "{s}");
        assert_eq!(s.parse::<CausalToken>().unwrap(), t);
    }
}

fn arb_position() -> impl Strategy<Value = ReplayPosition> {
    let pg = (any::<u64>(), any::<u32>(), any::<u64>())
        .prop_map(|(s, t, l)| ReplayPosition::from(PgPosition::new(s, t, Lsn::new(l))));
    let maria = proptest::collection::vec((any::<u32>(), any::<u32>(), any::<u64>()), 0..5)
        .prop_map(|v| {
            ReplayPosition::from(MariaDbPosition::new(
                v.into_iter().map(|(d, s, n)| MariaDbGtid::new(d, s, n)),
            ))
        });
    prop_oneof![pg, maria]
}

proptest! {
    #[test]
    fn text_round_trips(p in arb_position()) {
        let t = CausalToken::new(p);
        let text = t.to_string();
        prop_assert_eq!(text.parse::<CausalToken>().unwrap(), t);
    }

    #[test]
    fn native_text_round_trips(p in arb_position()) {
        match p {
            ReplayPosition::Postgres(p) => prop_assert_eq!(p.lsn().to_string().parse::<Lsn>().unwrap(), p.lsn()),
            ReplayPosition::MariaDb(m) => prop_assert_eq!(m.to_string().parse::<MariaDbPosition>().unwrap(), m),
        }
    }

    #[test]
    fn a_position_satisfies_its_own_token(p in arb_position()) {
        prop_assert!(CausalToken::new(p.clone()).is_satisfied_by(&p));
    }

    #[test]
    fn merge_dominates_both_on_one_history(a in arb_position(), b in arb_position()) {
        let (ta, tb) = (CausalToken::new(a.clone()), CausalToken::new(b.clone()));
        let m = ta.clone().merged(&tb);
        // Whatever satisfies the merge satisfies the argument.
        prop_assert!(tb.is_satisfied_by(m.position()) || tb.shortfall(m.position()).is_none());
        // And merging is idempotent.
        prop_assert_eq!(m.clone().merged(&tb), m.clone());
        let _ = ta.shortfall(m.position());
    }

    #[test]
    fn parsing_never_panics(s in any::<String>()) {
        let _ = s.parse::<CausalToken>();
        let _ = s.parse::<Lsn>();
        let _ = s.parse::<MariaDbPosition>();
    }

    #[test]
    fn parsing_token_like_text_never_panics(s in "(pg|mariadb|mysql|x)(:[0-9a-fA-F.:-]{0,12}){0,6}") {
        let _ = s.parse::<CausalToken>();
    }
}

/// The router's direct PostgreSQL check answers like `is_satisfied_by`.
#[test]
fn pg_is_reached_by_agrees_with_is_satisfied_by() {
    let lsns = [0, 1, 8499, 8500, 8501, u64::MAX];
    let at = |sys, tl, lsn| PgPosition::new(sys, tl, Lsn::new(lsn));
    for (sys, tl) in [(7, 1), (7, 2), (8, 1)] {
        for &t in &lsns {
            for &r in &lsns {
                let token = at(7, 1, t);
                let replayed = at(sys, tl, r);
                let expected =
                    CausalToken::new(token).is_satisfied_by(&ReplayPosition::from(replayed));
                assert_eq!(token.is_reached_by(&replayed), expected, "{token:?} {replayed:?}");
            }
        }
    }
}

/// MariaDB GTIDs with descending domains, `sep`-separated, up to `len` bytes: the worst order
/// for sorted insertion (each GTID went to the front).
fn descending_gtids(len: usize, sep: char) -> String {
    let mut s = String::new();
    let mut d = 10_000_000u32;
    loop {
        let g = format!("{d}-1-{d}");
        if s.len() + g.len() + 1 > len {
            return s;
        }
        if !s.is_empty() {
            s.push(sep);
        }
        s.push_str(&g);
        d -= 1;
    }
}

#[test]
fn tokens_longer_than_the_limit_are_refused_before_parsing() {
    let at_limit = format!("mariadb:1:{}", descending_gtids(CausalToken::MAX_LEN - 10, '.'));
    assert!(at_limit.len() <= CausalToken::MAX_LEN && at_limit.len() > CausalToken::MAX_LEN - 30);
    let t = tok(&at_limit);
    assert!(matches!(t.position(), ReplayPosition::MariaDb(p) if p.gtids().len() > 900));
    let over = format!("mariadb:1:{}", descending_gtids(1 << 20, '.'));
    let err = over.parse::<CausalToken>().unwrap_err();
    assert_eq!(err, Error::TokenTooLong { len: over.len(), max: CausalToken::MAX_LEN });
    assert_eq!(
        err.to_string(),
        format!("causal token is {} bytes long, more than the 16384 accepted", over.len())
    );
    // Garbage too: the length is checked first.
    let junk = "x".repeat(CausalToken::MAX_LEN + 1);
    assert!(matches!(junk.parse::<CausalToken>(), Err(Error::TokenTooLong { .. })));
    assert!(matches!(
        CausalToken::parse_for(&junk, TokenKind::Postgres),
        Err(Error::TokenTooLong { .. })
    ));
}

/// Parsing is linear (plus a sort): a megabyte of GTIDs in the worst order parses in well under
/// the bound even in a debug build (the
/// old sorted insertion took about a second per megabyte of MariaDB GTIDs in release builds,
/// and quadratically more for larger input).
#[test]
fn parsing_is_linear_time() {
    let bound = std::time::Duration::from_secs(5);
    let text = descending_gtids(1 << 20, ',');
    let started = std::time::Instant::now();
    let p: MariaDbPosition = text.parse().unwrap();
    assert!(p.gtids().windows(2).all(|w| w[0].domain() < w[1].domain()));
    assert!(started.elapsed() < bound, "{:?}", started.elapsed());
}

#[rstest]
#[case("pg:1:1:1:0-10", TokenKind::Postgres, Ok(TokenKind::Postgres))]
#[case("mariadb:1:0-1-5", TokenKind::MariaDb, Ok(TokenKind::MariaDb))]
#[case(
    "mariadb:1:0-1-5",
    TokenKind::Postgres,
    Err(Error::TokenKindMismatch { expected: TokenKind::Postgres, found: TokenKind::MariaDb })
)]
#[case(
    // The kind is checked before the payload.
    "mariadb:1:not a gtid",
    TokenKind::Postgres,
    Err(Error::TokenKindMismatch { expected: TokenKind::Postgres, found: TokenKind::MariaDb })
)]
#[case("pg:1:1:1:xyz", TokenKind::Postgres, Err(Error::InvalidLsn { text: "xyz".into() }))]
#[case("oracle:1:x", TokenKind::Postgres, Err(Error::UnknownTokenKind { kind: "oracle".into() }))]
fn tokens_of_another_backend_are_refused(
    #[case] text: &str,
    #[case] expected: TokenKind,
    #[case] want: Result<TokenKind, Error>,
) {
    assert_eq!(CausalToken::parse_for(text, expected).map(|t| t.kind()), want);
}

#[test]
fn merging_is_linear_and_keeps_the_later_gtid_per_domain() {
    let a: MariaDbPosition = descending_gtids(1 << 16, ',').parse().unwrap();
    let b = MariaDbPosition::new(
        a.gtids().iter().map(|g| MariaDbGtid::new(g.domain(), 1, g.sequence() + 1)),
    );
    let mut m = a.clone();
    m.merge(&b);
    assert_eq!(m, b);
    let mut m = b.clone();
    m.merge(&a);
    assert_eq!(m, b);
    let mut m = MariaDbPosition::default();
    m.merge(&a);
    assert_eq!(m, a);
}

/// A token is clamped to the primary's position: never further ahead than "now".
#[rstest]
#[case("pg:1:1:1:0-10", "pg:1:1:1:0-20", "pg:1:1:1:0-10")]
#[case("pg:1:1:1:FFFFFFFF-0", "pg:1:1:1:0-20", "pg:1:1:1:0-20")]
#[case("pg:1:1:9:0-1", "pg:1:1:2:0-20", "pg:1:1:2:0-20")]
#[case("pg:1:1:1:0-99", "pg:1:1:2:0-20", "pg:1:1:1:0-99")]
#[case("pg:1:2:1:0-99", "pg:1:1:1:0-20", "pg:1:2:1:0-99")]
#[case("mariadb:1:0-1-500.1-1-3", "mariadb:1:0-1-208.1-1-9", "mariadb:1:0-1-208.1-1-3")]
#[case("mariadb:1:0-1-5.7-1-99", "mariadb:1:0-1-208", "mariadb:1:0-1-5")]
#[case("mariadb:1:0-2-500", "mariadb:1:0-1-208", "mariadb:1:0-2-500")]
#[case("mariadb:1:5-1-1", "mariadb:1:", "mariadb:1:")]
#[case("pg:1:1:1:0-10", "mariadb:1:0-1-1", "pg:1:1:1:0-10")]
fn clamping(#[case] token: &str, #[case] primary: &str, #[case] want: &str) {
    let mut t = tok(token);
    t.clamp_to(&pos(primary));
    assert_eq!(t.to_string(), want);
    // On the primary's history (comparable at all), the primary itself satisfies it.
    let p = pos(primary);
    if t.shortfall(&p).is_some() {
        assert!(t.is_satisfied_by(&p), "{t} vs {primary}");
    }
}
