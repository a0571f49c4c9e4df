//! A statement's shape: its text with the values taken out, for remembering statements a
//! replica refused (see [`shape`]).

use super::Dialect;
use super::lexer::{Lexer, Tok};

/// The longest shape kept, in bytes: a longer statement has no shape.
pub const MAX_SHAPE: usize = 2048;

/// `sql`'s shape: its tokens, one space apart, with every literal and bind parameter a `?`, a
/// list of them one `?` (`IN (?)` for `IN (1, 2, 3)` and `IN ($1, $2)`), bare words lowercased,
/// comments and whitespace gone. Two calls of the same statement with other values, other
/// spacing or other comments have the same shape, and a shape never holds a value: it may be
/// logged. `None` when the text cannot be lexed to its end (an unterminated string or
/// comment), holds no token, or its shape would be longer than [`MAX_SHAPE`] bytes.
///
/// What a router learns from a replica's refusal is keyed by it: a refused statement's shape
/// goes to the primary from then on, however its values change.
///
/// ```
/// use rwsplit_core::{Dialect, shape};
/// let a = shape("SELECT set_flag('on', 42) /* job 7 */", Dialect::Postgres);
/// let b = shape("select  SET_FLAG('off', 7)", Dialect::Postgres);
/// assert_eq!(a.as_deref(), Some("select set_flag ( ? ) "));
/// assert_eq!(a, b);
/// assert_eq!(shape("SELECT 'unterminated", Dialect::Postgres), None);
/// ```
#[must_use]
pub fn shape(sql: &str, dialect: Dialect) -> Option<String> {
    let mut lx = Lexer::new(sql, dialect);
    let mut out = String::with_capacity(sql.len().min(MAX_SHAPE));
    // What the last two tokens written were: `?` then `,` makes a following `?` part of a list.
    let (mut last_value, mut list_comma) = (false, false);
    while let Some(tok) = lx.next_token() {
        let value = matches!(tok, Tok::Str | Tok::Num | Tok::Param);
        if value && list_comma {
            // `?, ?`: the comma is already written; take it back.
            out.truncate(out.len() - 2);
            (last_value, list_comma) = (true, false);
            continue;
        }
        list_comma = last_value && tok == Tok::Punct(b',');
        last_value = value;
        match tok {
            Tok::Word(w) => push_lower(&mut out, w),
            Tok::Quoted(q) => {
                out.push('"');
                out.push_str(&String::from_utf8_lossy(q));
                out.push('"');
            }
            Tok::UQuoted(q) => {
                out.push_str("U&\"");
                out.push_str(&String::from_utf8_lossy(q));
                out.push('"');
            }
            Tok::Str | Tok::Num | Tok::Param => out.push('?'),
            Tok::UserVar => out.push_str("@?"),
            Tok::SysVar(v) => {
                out.push_str("@@");
                push_lower(&mut out, v);
            }
            Tok::Punct(p) => out.push(char::from(p)),
        }
        out.push(' ');
        if out.len() > MAX_SHAPE {
            return None;
        }
    }
    (!lx.unterminated && !out.is_empty()).then_some(out)
}

fn push_lower(out: &mut String, w: &[u8]) {
    for c in String::from_utf8_lossy(w).chars() {
        out.push(c.to_ascii_lowercase());
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::{Dialect, MAX_SHAPE, shape};

    #[rstest]
    #[case::values("SELECT f(1, 'a')", "SELECT f(2, 'bb')")]
    #[case::params("SELECT f($1, $2)", "SELECT f($1)")]
    #[case::list("SELECT * FROM v WHERE id IN (1, 2, 3)", "select * from v where id in (7)")]
    #[case::spacing_and_comments("SELECT  f(1)", "/* a */ SELECT f(1) -- b")]
    #[case::case("SELECT F(1)", "select f(1)")]
    fn the_same_statement_with_other_values_has_one_shape(#[case] a: &str, #[case] b: &str) {
        assert_eq!(shape(a, Dialect::Postgres), shape(b, Dialect::Postgres));
        assert!(shape(a, Dialect::Postgres).is_some());
    }

    #[rstest]
    #[case::function("SELECT f(1)", "SELECT g(1)")]
    #[case::quoted_names_keep_their_case("SELECT \"F\"(1)", "SELECT \"f\"(1)")]
    #[case::relation("SELECT * FROM a", "SELECT * FROM b")]
    #[case::operator("SELECT 1 + 2", "SELECT 1 - 2")]
    fn different_statements_have_different_shapes(#[case] a: &str, #[case] b: &str) {
        assert_ne!(shape(a, Dialect::Postgres), shape(b, Dialect::Postgres));
    }

    #[test]
    fn a_shape_holds_no_value() {
        let s = shape("SELECT f('secret', 31337, E'x\\'y', $$dollar$$)", Dialect::Postgres);
        let s = s.unwrap();
        for value in ["secret", "31337", "x", "dollar"] {
            assert!(!s.contains(value), "{value} in {s}");
        }
        let m = shape("SELECT f('secret', @v, @@sql_mode)", Dialect::MySql).unwrap();
        assert!(!m.contains("secret") && !m.contains("@v ") && m.contains("@@sql_mode"), "{m}");
    }

    #[rstest]
    #[case::unterminated_string("SELECT 'x")]
    #[case::unterminated_comment("SELECT 1 /* x")]
    #[case::empty("")]
    #[case::only_a_comment("/* nothing */")]
    fn text_that_does_not_lex_to_its_end_has_no_shape(#[case] sql: &str) {
        assert_eq!(shape(sql, Dialect::Postgres), None);
    }

    #[test]
    fn a_shape_is_bounded() {
        let long = format!("SELECT {}", "a + ".repeat(MAX_SHAPE)) + "1";
        assert_eq!(shape(&long, Dialect::Postgres), None);
        let values = format!("SELECT f({})", vec!["1"; 10_000].join(", "));
        assert_eq!(shape(&values, Dialect::Postgres).as_deref(), Some("select f ( ? ) "));
    }
}
