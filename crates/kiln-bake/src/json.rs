//! HCL's JSON syntax checked the way `hashicorp/hcl/v2/json` parses it, so a broken
//! `docker-bake.json` fails with buildx's diagnostic (`file:line,col: Summary;
//! Detail`) rather than serde's words. Only the first diagnostic is reported, as
//! buildx prints only the first.

use crate::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    BraceO,
    BraceC,
    BrackO,
    BrackC,
    Comma,
    Colon,
    Equals,
    String,
    Number,
    Keyword,
    Invalid,
    Eof,
}

#[derive(Debug, Clone)]
struct Token {
    kind: Tok,
    bytes: Vec<u8>,
    line: usize,
    column: usize,
}

/// The scanner of `hcl/json/scanner.go`.
fn scan(buf: &[u8]) -> Vec<Token> {
    let mut tokens = Vec::new();
    let (mut i, mut line, mut column) = (0, 1, 1);
    loop {
        while i < buf.len() {
            match buf[i] {
                b' ' => column += 1,
                b'\n' => {
                    line += 1;
                    column = 1;
                }
                b'\r' => {}
                b'\t' => column += 2,
                _ => break,
            }
            i += 1;
        }
        let token = |kind, bytes: &[u8], line, column| Token {
            kind,
            bytes: bytes.to_vec(),
            line,
            column,
        };
        if i >= buf.len() {
            tokens.push(token(Tok::Eof, &[], line, column));
            return tokens;
        }
        let first = buf[i];
        match first {
            b'{' | b'}' | b'[' | b']' | b',' | b':' | b'=' => {
                let kind = match first {
                    b'{' => Tok::BraceO,
                    b'}' => Tok::BraceC,
                    b'[' => Tok::BrackO,
                    b']' => Tok::BrackC,
                    b',' => Tok::Comma,
                    b':' => Tok::Colon,
                    _ => Tok::Equals,
                };
                tokens.push(token(kind, &buf[i..=i], line, column));
                i += 1;
                column += 1;
            }
            b'"' => {
                let start = i;
                let start_column = column;
                i += 1;
                column += 1;
                let mut escaping = false;
                while i < buf.len() {
                    let b = buf[i];
                    if b == b'\\' {
                        escaping = !escaping;
                        i += 1;
                        column += 1;
                    } else if b == b'"' {
                        i += 1;
                        column += 1;
                        if !escaping {
                            break;
                        }
                        escaping = false;
                    } else if b < 32 {
                        break;
                    } else {
                        let len = utf8_len(b);
                        i = (i + len).min(buf.len());
                        column += 1;
                        escaping = false;
                    }
                }
                tokens.push(token(Tok::String, &buf[start..i], line, start_column));
            }
            b'-' | b'+' | b'.' | b'0'..=b'9' => {
                let start = i;
                let start_column = column;
                while i < buf.len()
                    && matches!(buf[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                    column += 1;
                }
                tokens.push(token(Tok::Number, &buf[start..i], line, start_column));
            }
            b if b.is_ascii_alphabetic() => {
                let start = i;
                let start_column = column;
                while i < buf.len() && (buf[i].is_ascii_alphabetic() || buf[i] == b'_') {
                    i += 1;
                    column += 1;
                }
                tokens.push(token(Tok::Keyword, &buf[start..i], line, start_column));
            }
            _ => {
                tokens.push(token(Tok::Invalid, &buf[i..=i], line, column));
                tokens.push(token(Tok::Eof, &[], line, column + 1));
                return tokens;
            }
        }
    }
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

/// A diagnostic: where, and `Summary; Detail`.
struct Diag {
    line: usize,
    column: usize,
    text: String,
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

type Parsed = Result<Node, Diag>;

#[derive(Debug, PartialEq, Eq)]
enum Node {
    Object,
    Array,
    String,
    Other,
}

fn diag(t: &Token, summary: &str, detail: &str) -> Diag {
    Diag {
        line: t.line,
        column: t.column,
        text: format!("{summary}; {detail}"),
    }
}

const START: &str =
    "A JSON value must start with a brace, a bracket, a number, a string, or a keyword.";

impl Parser {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn read(&mut self) -> Token {
        let t = self.peek().clone();
        if t.kind != Tok::Eof {
            self.pos += 1;
        }
        t
    }

    fn value(&mut self) -> Parsed {
        let t = self.peek().clone();
        match t.kind {
            Tok::BraceO => self.object(),
            Tok::BrackO => self.array(),
            Tok::Number => self.number(),
            Tok::String => self.string(),
            Tok::Keyword => self.keyword(),
            Tok::BraceC => Err(diag(&t, "Missing JSON value", START)),
            Tok::BrackC => Err(diag(&t, "Missing array element value", START)),
            Tok::Eof => Err(diag(&t, "Missing value", "The JSON data ends prematurely.")),
            _ => Err(diag(&t, "Invalid start of value", START)),
        }
    }

    fn object(&mut self) -> Parsed {
        let open = self.read();
        loop {
            if self.peek().kind == Tok::BraceC {
                break;
            }
            let key_token = self.peek().clone();
            let key = self.value()?;
            if key != Node::String {
                return Err(diag(
                    &key_token,
                    "Invalid object property name",
                    "A JSON object property name must be a string",
                ));
            }
            let colon = self.read();
            if colon.kind != Tok::Colon {
                if matches!(colon.kind, Tok::BraceC | Tok::Comma) {
                    return Err(diag(
                        &colon,
                        "Missing object value",
                        "A JSON object attribute must have a value, introduced by a colon.",
                    ));
                }
                if colon.kind == Tok::Equals {
                    return Err(diag(
                        &colon,
                        "Missing property value colon",
                        "JSON uses a colon as its name/value delimiter, not an equals sign.",
                    ));
                }
                return Err(diag(
                    &colon,
                    "Missing property value colon",
                    "A colon must appear between an object property's name and its value.",
                ));
            }
            self.value()?;
            match self.peek().kind {
                Tok::Comma => {
                    let comma = self.read();
                    if self.peek().kind == Tok::BraceC {
                        return Err(diag(
                            &comma,
                            "Trailing comma in object",
                            "JSON does not permit a trailing comma after the final property in an object.",
                        ));
                    }
                }
                Tok::Eof => {
                    return Err(diag(
                        &open,
                        "Unclosed object",
                        "No closing brace was found for this JSON object.",
                    ));
                }
                Tok::BrackC => {
                    self.read();
                    return Err(diag(
                        &self.peek().clone(),
                        "Mismatched braces",
                        "A JSON object must be closed with a brace, not a bracket.",
                    ));
                }
                Tok::BraceC => break,
                _ => {
                    self.recover(Tok::BraceO, Tok::BraceC);
                    return Err(diag(
                        &self.peek().clone(),
                        "Missing attribute seperator comma",
                        "A comma must appear between each property definition in an object.",
                    ));
                }
            }
        }
        self.read();
        Ok(Node::Object)
    }

    /// The parser's `recover`: skips to what seems to be the end of the construct.
    fn recover(&mut self, open_kind: Tok, close_kind: Tok) {
        let mut open = 1;
        let mut tok = self.read();
        loop {
            if tok.kind == open_kind {
                open += 1;
            } else if tok.kind == close_kind {
                open -= 1;
                if open <= 1 {
                    return;
                }
            } else if tok.kind == Tok::Eof {
                return;
            }
            tok = self.read();
        }
    }

    fn array(&mut self) -> Parsed {
        let open = self.read();
        loop {
            if self.peek().kind == Tok::BrackC {
                break;
            }
            self.value()?;
            match self.peek().kind {
                Tok::Comma => {
                    let comma = self.read();
                    if self.peek().kind == Tok::BrackC {
                        return Err(diag(
                            &comma,
                            "Trailing comma in array",
                            "JSON does not permit a trailing comma after the final value in an array.",
                        ));
                    }
                }
                Tok::Colon => {
                    self.recover(Tok::BrackO, Tok::BrackC);
                    return Err(diag(
                        &self.peek().clone(),
                        "Invalid array value",
                        "A colon is not used to introduce values in a JSON array.",
                    ));
                }
                Tok::Eof => {
                    return Err(diag(
                        &open,
                        "Unclosed object",
                        "No closing bracket was found for this JSON array.",
                    ));
                }
                Tok::BraceC => {
                    self.recover(Tok::BrackO, Tok::BrackC);
                    return Err(diag(
                        &self.peek().clone(),
                        "Mismatched brackets",
                        "A JSON array must be closed with a bracket, not a brace.",
                    ));
                }
                Tok::BrackC => break,
                _ => {
                    self.recover(Tok::BrackO, Tok::BrackC);
                    return Err(diag(
                        &self.peek().clone(),
                        "Missing attribute seperator comma",
                        "A comma must appear between each value in an array.",
                    ));
                }
            }
        }
        self.read();
        Ok(Node::Array)
    }

    fn number(&mut self) -> Parsed {
        let t = self.read();
        let text = String::from_utf8_lossy(&t.bytes);
        static NUMBER: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
            regex::Regex::new(r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$")
                .expect("valid regex")
        });
        if !NUMBER.is_match(&text) {
            return Err(diag(
                &t,
                "Invalid JSON number",
                "There is a syntax error in the given JSON number.",
            ));
        }
        Ok(Node::Other)
    }

    fn string(&mut self) -> Parsed {
        let t = self.read();
        if serde_json::from_slice::<String>(&t.bytes).is_err() {
            return Err(diag(
                &t,
                "Invalid JSON string",
                "There is a syntax error in the given JSON string.",
            ));
        }
        Ok(Node::String)
    }

    fn keyword(&mut self) -> Parsed {
        let t = self.read();
        let s = String::from_utf8_lossy(&t.bytes).into_owned();
        match s.as_str() {
            "true" | "false" | "null" => Ok(Node::Other),
            "undefined" | "NaN" | "Infinity" => Err(diag(
                &t,
                "Invalid JSON keyword",
                &format!(
                    "The JavaScript identifier {} cannot be used in JSON.",
                    crate::model::go_quote(&s)
                ),
            )),
            _ => {
                let hint = crate::eval::name_suggestion(&s, ["false", "true", "null"])
                    .map(|k| format!(" Did you mean \"{k}\"?"))
                    .unwrap_or_default();
                Err(diag(
                    &t,
                    "Invalid JSON keyword",
                    &format!(
                        "{} is not a valid JSON keyword.{hint}",
                        crate::model::go_quote(&s)
                    ),
                ))
            }
        }
    }
}

/// Checks a JSON definition file: `Ok` when HCL's JSON parser accepts it.
pub(crate) fn check(text: &str, name: &str) -> Result<(), Error> {
    let mut parser = Parser {
        tokens: scan(text.as_bytes()),
        pos: 0,
    };
    let fail = |d: Diag| Error::Hcl(format!("{name}:{},{}: {}", d.line, d.column, d.text));
    let start = parser.peek().clone();
    let root = parser.value().map_err(fail)?;
    let next = parser.peek().clone();
    if next.kind != Tok::Eof {
        return Err(fail(diag(
            &next,
            "Extraneous data after value",
            "Extra characters appear after the JSON value.",
        )));
    }
    if !matches!(root, Node::Object | Node::Array) {
        return Err(fail(diag(
            &start,
            "Root value must be object",
            "The root value in a JSON-based configuration must be either a JSON object or a JSON array of objects.",
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    fn err(text: &str) -> String {
        check(text, "f.json").unwrap_err().to_string()
    }

    #[test]
    fn json_errors_are_hcl_diagnostics() {
        assert!(check("{\"target\": {\"a\": {\"tags\": [\"x\"]}}}", "f.json").is_ok());
        assert_eq!(
            err("{\"a\": [1,]}"),
            "f.json:1,9: Trailing comma in array; JSON does not permit a trailing comma after the final value in an array."
        );
        assert_eq!(
            err("{\"a\": 1,}"),
            "f.json:1,8: Trailing comma in object; JSON does not permit a trailing comma after the final property in an object."
        );
        assert!(err("{\"a\" = 1}").contains(
            "Missing property value colon; JSON uses a colon as its name/value delimiter, not an equals sign."
        ));
        assert!(err("{\"a\": tru}").contains(
            "Invalid JSON keyword; \"tru\" is not a valid JSON keyword. Did you mean \"true\"?"
        ));
        assert!(err("{\"a\": 1").contains("Unclosed object; No closing brace was found"));
        assert!(err("{\"a\": 1 \"b\": 2}").contains("Missing attribute seperator comma"));
        assert!(err("{a: 1}").contains("Invalid JSON keyword"));
        assert!(err("{\"a\": 01}").contains("Invalid JSON number"));
        assert!(err("[] x").contains("Extraneous data after value"));
        assert!(err("\"x\"").contains("Root value must be object"));
    }
}
