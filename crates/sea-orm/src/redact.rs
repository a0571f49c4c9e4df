//! Node names for logs, metrics and `Debug`: `host:port/database`, never credentials.

/// `scheme://user:password@host:port/db?params` → `host:port/db`. Anything unparsable becomes
/// `"<unparsable url>"` rather than risk printing a secret.
pub(crate) fn node_name(url: &str) -> String {
    let Some((_, rest)) = url.split_once("://") else { return "<unparsable url>".to_owned() };
    // Authority ends at the first '/', '?' or '#'; userinfo ends at its last '@'.
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let db = tail.strip_prefix('/').map(|t| t.split(['?', '#']).next().unwrap_or(""));
    match db {
        Some(db) if !db.is_empty() => format!("{host}/{db}"),
        _ => host.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::node_name;

    #[rstest::rstest]
    #[case("postgres://user:secret@db1:5432/app", "db1:5432/app")]
    #[case("postgres://user:p%40ss@word@db1:5432/app?sslmode=require", "db1:5432/app")]
    #[case("mysql://app@127.0.0.1:3306/shop", "127.0.0.1:3306/shop")]
    #[case("postgres://db1", "db1")]
    #[case("postgres://u:pw@db1/", "db1")]
    #[case("postgresql://u:pw@[::1]:5432/app#frag", "[::1]:5432/app")]
    #[case("not a url", "<unparsable url>")]
    #[case("", "<unparsable url>")]
    fn names_never_contain_credentials(#[case] url: &str, #[case] expected: &str) {
        let name = node_name(url);
        assert_eq!(name, expected);
        assert!(!name.contains("secret") && !name.contains("pw") && !name.contains("ss@"));
    }
}
