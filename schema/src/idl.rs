//! A parser for the BARE schema language (the subset the protocol schema uses, plus the
//! primitives of the BARE specification).
//!
//! It is shared by `build.rs`, which generates the Rust wire types from the vendored schema, and
//! by tests, which check that every type of the schema was generated. It never panics: every
//! problem is a [`IdlError`] carrying the line where it was found.

use std::fmt;

/// One `type Name <type>` definition, in schema order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    pub name: String,
    pub ty: TypeExpr,
    /// 1-based line of the `type` keyword.
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeExpr {
    Primitive(Primitive),
    Optional(Box<TypeExpr>),
    List(Box<TypeExpr>),
    Map(Box<TypeExpr>, Box<TypeExpr>),
    /// A reference to another user-defined type.
    Named(String),
    Struct(Vec<Field>),
    /// Members in order; a member's position is its wire tag unless an explicit value is given.
    Union(Vec<UnionMember>),
    Enum(Vec<EnumMember>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Primitive {
    Uint,
    Int,
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    F32,
    F64,
    Bool,
    Str,
    Data,
    Void,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub ty: TypeExpr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnionMember {
    pub ty: TypeExpr,
    pub explicit_tag: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnumMember {
    pub name: String,
    pub explicit_value: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdlError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for IdlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "schema line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for IdlError {}

/// Parses a whole schema into its definitions, in order.
pub fn parse(source: &str) -> Result<Vec<Definition>, IdlError> {
    let tokens = tokenize(source)?;
    let mut parser = Parser { tokens, position: 0 };
    let mut definitions = Vec::new();
    while parser.peek().is_some() {
        definitions.push(parser.definition()?);
    }
    Ok(definitions)
}

impl Primitive {
    fn from_keyword(word: &str) -> Option<Self> {
        Some(match word {
            "uint" => Self::Uint,
            "int" => Self::Int,
            "u8" => Self::U8,
            "u16" => Self::U16,
            "u32" => Self::U32,
            "u64" => Self::U64,
            "i8" => Self::I8,
            "i16" => Self::I16,
            "i32" => Self::I32,
            "i64" => Self::I64,
            "f32" => Self::F32,
            "f64" => Self::F64,
            "bool" => Self::Bool,
            "str" => Self::Str,
            "data" => Self::Data,
            "void" => Self::Void,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TokenKind {
    Word(String),
    Number(u64),
    Punct(char),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    kind: TokenKind,
    line: usize,
}

fn tokenize(source: &str) -> Result<Vec<Token>, IdlError> {
    let mut tokens = Vec::new();
    for (index, raw_line) in source.lines().enumerate() {
        let line = index + 1;
        let code = raw_line.split('#').next().unwrap_or("");
        let mut chars = code.char_indices().peekable();
        while let Some((start, c)) = chars.next() {
            if c.is_whitespace() {
                continue;
            }
            if "<>{}|:=[]".contains(c) {
                tokens.push(Token { kind: TokenKind::Punct(c), line });
                continue;
            }
            if c.is_ascii_alphanumeric() || c == '_' {
                let mut end = start + c.len_utf8();
                while let Some(&(next_index, next)) = chars.peek() {
                    if next.is_ascii_alphanumeric() || next == '_' {
                        end = next_index + next.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                let word = code.get(start..end).unwrap_or("");
                let kind = if c.is_ascii_digit() {
                    let number = word
                        .parse()
                        .map_err(|_| IdlError { line, message: format!("`{word}` is not a valid number") })?;
                    TokenKind::Number(number)
                } else {
                    TokenKind::Word(word.to_owned())
                };
                tokens.push(Token { kind, line });
                continue;
            }
            return Err(IdlError { line, message: format!("unexpected character `{c}`") });
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    position: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position)
    }

    fn line(&self) -> usize {
        self.peek().or_else(|| self.tokens.last()).map_or(1, |token| token.line)
    }

    fn error<T>(&self, message: impl Into<String>) -> Result<T, IdlError> {
        Err(IdlError { line: self.line(), message: message.into() })
    }

    fn next(&mut self) -> Result<Token, IdlError> {
        match self.tokens.get(self.position) {
            Some(token) => {
                self.position += 1;
                Ok(token.clone())
            }
            None => self.error("unexpected end of schema"),
        }
    }

    fn word(&mut self) -> Result<String, IdlError> {
        match self.next()? {
            Token { kind: TokenKind::Word(word), .. } => Ok(word),
            other => Err(IdlError { line: other.line, message: format!("expected a name, found {:?}", other.kind) }),
        }
    }

    fn number(&mut self) -> Result<u64, IdlError> {
        match self.next()? {
            Token { kind: TokenKind::Number(number), .. } => Ok(number),
            other => Err(IdlError { line: other.line, message: format!("expected a number, found {:?}", other.kind) }),
        }
    }

    fn expect(&mut self, punct: char) -> Result<(), IdlError> {
        match self.next()? {
            Token { kind: TokenKind::Punct(found), .. } if found == punct => Ok(()),
            other => Err(IdlError { line: other.line, message: format!("expected `{punct}`, found {:?}", other.kind) }),
        }
    }

    fn eat(&mut self, punct: char) -> bool {
        let matches = matches!(self.peek(), Some(Token { kind: TokenKind::Punct(found), .. }) if *found == punct);
        if matches {
            self.position += 1;
        }
        matches
    }

    fn definition(&mut self) -> Result<Definition, IdlError> {
        let line = self.line();
        let keyword = self.word()?;
        if keyword != "type" {
            return Err(IdlError { line, message: format!("expected `type`, found `{keyword}`") });
        }
        let name = self.word()?;
        if !name.starts_with(|c: char| c.is_ascii_uppercase()) {
            return Err(IdlError { line, message: format!("type name `{name}` must start with an uppercase letter") });
        }
        let ty = self.type_expr()?;
        Ok(Definition { name, ty, line })
    }

    fn type_expr(&mut self) -> Result<TypeExpr, IdlError> {
        let line = self.line();
        let word = self.word()?;
        if let Some(primitive) = Primitive::from_keyword(&word) {
            if primitive == Primitive::Data && self.eat('<') {
                // Fixed-length data is not used by the protocol; refuse rather than mis-encode it.
                return self.error("fixed-length data<N> is not supported");
            }
            return Ok(TypeExpr::Primitive(primitive));
        }
        match word.as_str() {
            "optional" => Ok(TypeExpr::Optional(Box::new(self.bracketed()?))),
            "list" => {
                let element = self.bracketed()?;
                if self.eat('[') {
                    return self.error("fixed-length list[N] is not supported");
                }
                Ok(TypeExpr::List(Box::new(element)))
            }
            "map" => {
                let key = self.bracketed()?;
                let value = self.bracketed()?;
                Ok(TypeExpr::Map(Box::new(key), Box::new(value)))
            }
            "struct" => self.struct_body(),
            "union" => self.union_body(),
            "enum" => self.enum_body(),
            _ if word.starts_with(|c: char| c.is_ascii_uppercase()) => Ok(TypeExpr::Named(word)),
            _ => Err(IdlError { line, message: format!("unknown type `{word}`") }),
        }
    }

    fn bracketed(&mut self) -> Result<TypeExpr, IdlError> {
        self.expect('<')?;
        let inner = self.type_expr()?;
        self.expect('>')?;
        Ok(inner)
    }

    fn struct_body(&mut self) -> Result<TypeExpr, IdlError> {
        self.expect('{')?;
        let mut fields: Vec<Field> = Vec::new();
        while !self.eat('}') {
            let name = self.word()?;
            if fields.iter().any(|field| field.name == name) {
                return self.error(format!("duplicate field `{name}`"));
            }
            self.expect(':')?;
            let ty = self.type_expr()?;
            fields.push(Field { name, ty });
        }
        if fields.is_empty() {
            return self.error("a struct needs at least one field");
        }
        Ok(TypeExpr::Struct(fields))
    }

    fn union_body(&mut self) -> Result<TypeExpr, IdlError> {
        self.expect('{')?;
        let mut members = Vec::new();
        self.eat('|');
        loop {
            let ty = self.type_expr()?;
            let explicit_tag = if self.eat('=') { Some(self.number()?) } else { None };
            members.push(UnionMember { ty, explicit_tag });
            if self.eat('}') {
                break;
            }
            self.expect('|')?;
        }
        Ok(TypeExpr::Union(members))
    }

    fn enum_body(&mut self) -> Result<TypeExpr, IdlError> {
        self.expect('{')?;
        let mut members: Vec<EnumMember> = Vec::new();
        while !self.eat('}') {
            let name = self.word()?;
            if members.iter().any(|member| member.name == name) {
                return self.error(format!("duplicate enum value `{name}`"));
            }
            let explicit_value = if self.eat('=') { Some(self.number()?) } else { None };
            members.push(EnumMember { name, explicit_value });
        }
        if members.is_empty() {
            return self.error("an enum needs at least one value");
        }
        Ok(TypeExpr::Enum(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_construct() {
        let definitions = parse(
            "# comment\n type A struct { x: u16 y: optional<list<map<str><B>>> }\n\
             type B enum { ONE TWO }\n type C union { A | B | D }\n type D void\n type E i64",
        )
        .unwrap_or_default();
        let names: Vec<&str> = definitions.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["A", "B", "C", "D", "E"]);
        assert_eq!(definitions.get(3).map(|d| &d.ty), Some(&TypeExpr::Primitive(Primitive::Void)));
    }

    #[test]
    fn reports_the_line_of_an_error() {
        let error = parse("type A struct {\n  x: u16\n  y: bogus\n}").err();
        assert_eq!(error.map(|e| e.line), Some(3));
    }

    #[test]
    fn rejects_truncated_schemas_without_panicking() {
        for source in ["type", "type A", "type A struct {", "type A union { B |", "type A map<str>"] {
            assert!(parse(source).is_err(), "{source}");
        }
    }
}
