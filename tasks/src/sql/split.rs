//! SQL text into statements at the semicolons that end them: not those inside quotes
//! ('...', "..."), dollar quotes ($$...$$, $tag$...$tag$) or comments (-- and /* */).

/// The statements of `sql`, each trimmed, empty ones left out.
pub fn statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = sql.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' | b'"' => i = skip_quoted(sql, i, bytes[i]),
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = sql[i..].find('\n').map_or(bytes.len(), |n| i + n);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = sql[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |n| i + 2 + n + 2);
            }
            b'$' => i = skip_dollar_quoted(sql, i),
            b';' => {
                push(&mut out, &sql[start..i]);
                start = i + 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    push(&mut out, &sql[start..]);
    out
}

fn push(out: &mut Vec<String>, statement: &str) {
    let statement = statement.trim();
    if !statement.is_empty() {
        out.push(statement.to_string());
    }
}

/// Past the closing quote of the quoted text opening at `at` (a doubled quote is one
/// quote inside it).
fn skip_quoted(sql: &str, at: usize, quote: u8) -> usize {
    let bytes = sql.as_bytes();
    let mut i = at + 1;
    while i < bytes.len() {
        if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    bytes.len()
}

/// Past a dollar-quoted text opening at `at` ($$ or $tag$), or one byte on when `$`
/// opens none (a parameter such as $1).
fn skip_dollar_quoted(sql: &str, at: usize) -> usize {
    let rest = &sql[at + 1..];
    let Some(close) = rest.find('$') else {
        return at + 1;
    };
    let tag = &rest[..close];
    if !tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        || tag.starts_with(|c: char| c.is_ascii_digit())
    {
        return at + 1;
    }
    let opener = format!("${tag}$");
    let body = at + opener.len();
    match sql[body..].find(&opener) {
        Some(n) => body + n + opener.len(),
        None => sql.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::statements;

    #[test]
    fn semicolons_inside_quotes_comments_and_dollar_quotes_do_not_split() {
        let sql = "insert into t values ('a;b', \"c;d\"); -- a comment; still one\n\
                   select 1 /* x; y */ ;\n\
                   create function f() returns int as $body$ select 1; $body$ language sql;\n\
                   select $1, 'it''s; fine';;  ";
        assert_eq!(
            statements(sql),
            [
                "insert into t values ('a;b', \"c;d\")",
                "-- a comment; still one\nselect 1 /* x; y */",
                "create function f() returns int as $body$ select 1; $body$ language sql",
                "select $1, 'it''s; fine'",
            ]
        );
        assert!(statements(" ; \n ;").is_empty());
    }
}
