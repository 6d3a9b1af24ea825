//! The files a simple-API project page lists: PEP 691 JSON, or PEP 503 HTML anchors, with the
//! PEP 592 (yanked), PEP 658/714 (core metadata) and `requires-python` attributes.

use std::path::PathBuf;
use std::str::FromStr;

use pep508_rs::pep440_rs::VersionSpecifiers;
use reqwest::Url;
use serde::Deserialize;

use crate::requirement::Sha256Hex;

/// Where a file can be read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileLocation {
    Url(Url),
    /// A file of the find-links wheelhouse.
    Path(PathBuf),
}

impl std::fmt::Display for FileLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileLocation::Url(url) => write!(f, "{url}"),
            FileLocation::Path(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Whether the index serves the file's core metadata on its own (PEP 658).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetadataOffer {
    No,
    Yes { sha256: Option<Sha256Hex> },
}

/// One file of a project page.
#[derive(Clone, Debug)]
pub struct DistFile {
    pub filename: String,
    pub location: FileLocation,
    /// Known digest: from the index, or computed when a find-links file was read.
    pub sha256: Option<Sha256Hex>,
    pub requires_python: Option<VersionSpecifiers>,
    pub yanked: bool,
    pub metadata: MetadataOffer,
}

/// Why a page could not be read.
#[derive(Debug, thiserror::Error)]
#[error("the index page {url} is not a valid {format} simple-API page: {reason}")]
pub struct PageError {
    pub url: String,
    pub format: &'static str,
    pub reason: String,
}

#[derive(Deserialize)]
struct JsonPage {
    meta: JsonMeta,
    files: Vec<JsonFile>,
}

#[derive(Deserialize)]
struct JsonMeta {
    #[serde(rename = "api-version")]
    api_version: String,
}

#[derive(Deserialize)]
struct JsonFile {
    filename: String,
    url: String,
    #[serde(default)]
    hashes: std::collections::HashMap<String, String>,
    #[serde(rename = "requires-python", default)]
    requires_python: Option<String>,
    #[serde(default)]
    yanked: Option<serde_json::Value>,
    #[serde(rename = "core-metadata", default)]
    core_metadata: Option<serde_json::Value>,
    #[serde(rename = "dist-info-metadata", default)]
    dist_info_metadata: Option<serde_json::Value>,
}

/// Parses a PEP 691 JSON page fetched from `page_url`.
pub fn parse_json(body: &[u8], page_url: &Url) -> Result<Vec<DistFile>, PageError> {
    let error = |reason: String| PageError {
        url: page_url.to_string(),
        format: "JSON",
        reason,
    };
    let page: JsonPage = serde_json::from_slice(body).map_err(|err| error(err.to_string()))?;
    if !page.meta.api_version.starts_with("1.") {
        return Err(error(format!(
            "api-version {} is not supported (1.x is)",
            page.meta.api_version
        )));
    }
    let mut files = Vec::with_capacity(page.files.len());
    for file in page.files {
        let url = page_url
            .join(&file.url)
            .map_err(|err| error(format!("bad url '{}': {err}", file.url)))?;
        let yanked = match file.yanked {
            Some(serde_json::Value::Bool(b)) => b,
            Some(serde_json::Value::String(_)) => true,
            _ => false,
        };
        let metadata = match file.core_metadata.or(file.dist_info_metadata) {
            Some(serde_json::Value::Bool(true)) => MetadataOffer::Yes { sha256: None },
            Some(serde_json::Value::Object(hashes)) => MetadataOffer::Yes {
                sha256: hashes
                    .get("sha256")
                    .and_then(|v| v.as_str())
                    .and_then(Sha256Hex::parse),
            },
            _ => MetadataOffer::No,
        };
        files.push(DistFile {
            location: FileLocation::Url(without_fragment(url)),
            sha256: file.hashes.get("sha256").and_then(|h| Sha256Hex::parse(h)),
            requires_python: file
                .requires_python
                .as_deref()
                .and_then(|s| VersionSpecifiers::from_str(s).ok()),
            filename: file.filename,
            yanked,
            metadata,
        });
    }
    Ok(files)
}

/// Parses a PEP 503 HTML page fetched from `page_url`: every `<a href>` is a file.
pub fn parse_html(body: &[u8], page_url: &Url) -> Result<Vec<DistFile>, PageError> {
    let error = |reason: String| PageError {
        url: page_url.to_string(),
        format: "HTML",
        reason,
    };
    let text = String::from_utf8_lossy(body);
    let mut base = page_url.clone();
    let mut files = Vec::new();
    for tag in tags(&text) {
        let attrs = attributes(tag.attrs);
        let attr = |name: &str| {
            attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        if tag.name.eq_ignore_ascii_case("base") {
            if let Some(href) = attr("href") {
                base = page_url
                    .join(href)
                    .map_err(|err| error(format!("bad base href '{href}': {err}")))?;
            }
            continue;
        }
        if !tag.name.eq_ignore_ascii_case("a") {
            continue;
        }
        let Some(href) = attr("href") else { continue };
        let url = base
            .join(href)
            .map_err(|err| error(format!("bad href '{href}': {err}")))?;
        let sha256 = url
            .fragment()
            .and_then(|f| f.strip_prefix("sha256="))
            .and_then(Sha256Hex::parse);
        let filename = url
            .path_segments()
            .and_then(|mut segments| segments.next_back())
            .map(percent_decode)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| decode_entities(tag.text.trim()));
        let metadata = match attr("data-core-metadata").or(attr("data-dist-info-metadata")) {
            None => MetadataOffer::No,
            Some(value) => MetadataOffer::Yes {
                sha256: value.strip_prefix("sha256=").and_then(Sha256Hex::parse),
            },
        };
        files.push(DistFile {
            filename,
            location: FileLocation::Url(without_fragment(url)),
            sha256,
            requires_python: attr("data-requires-python")
                .and_then(|s| VersionSpecifiers::from_str(s).ok()),
            yanked: attr("data-yanked").is_some(),
            metadata,
        });
    }
    Ok(files)
}

fn without_fragment(mut url: Url) -> Url {
    url.set_fragment(None);
    url
}

struct Tag<'a> {
    name: &'a str,
    attrs: &'a str,
    /// Text up to the next tag (the anchor's text for `<a>`).
    text: &'a str,
}

/// The start tags of an HTML document, tolerant of anything it does not understand.
fn tags(html: &str) -> Vec<Tag<'_>> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        if rest.starts_with("!--") {
            match rest.find("-->") {
                Some(end) => rest = &rest[end + 3..],
                None => break,
            }
            continue;
        }
        let Some(close) = find_tag_end(rest) else {
            break;
        };
        let inner = &rest[..close];
        rest = &rest[close + 1..];
        if inner.starts_with(['/', '!', '?']) {
            continue;
        }
        let name_end = inner
            .find(|c: char| c.is_whitespace() || c == '/')
            .unwrap_or(inner.len());
        let text = &rest[..rest.find('<').unwrap_or(rest.len())];
        out.push(Tag {
            name: &inner[..name_end],
            attrs: &inner[name_end..],
            text,
        });
    }
    out
}

/// The `>` closing a tag, skipping those inside quoted attribute values.
fn find_tag_end(s: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return Some(i),
            _ => {}
        }
    }
    None
}

/// `name="value"`, `name='value'`, `name=value` and bare `name` attributes, entity-decoded.
fn attributes(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
    while !rest.is_empty() {
        let name_end = rest
            .find(|c: char| c.is_whitespace() || c == '=' || c == '/')
            .unwrap_or(rest.len());
        let name = &rest[..name_end];
        rest = rest[name_end..].trim_start();
        let mut value = String::new();
        if let Some(after_eq) = rest.strip_prefix('=') {
            let after_eq = after_eq.trim_start();
            if let Some(q) = after_eq.chars().next().filter(|c| *c == '"' || *c == '\'') {
                let body = &after_eq[1..];
                let end = body.find(q).unwrap_or(body.len());
                value = decode_entities(&body[..end]);
                rest = body.get(end + 1..).unwrap_or("");
            } else {
                let end = after_eq.find(char::is_whitespace).unwrap_or(after_eq.len());
                value = decode_entities(&after_eq[..end]);
                rest = &after_eq[end..];
            }
        }
        if !name.is_empty() {
            out.push((name.to_string(), value));
        } else if rest.len() == s.len() {
            break;
        }
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
    }
    out
}

/// The character references pages use (`&lt;`, `&gt;`, `&amp;`, `&quot;`, `&#39;`, `&#x3C;`).
fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest.find(';').filter(|end| *end <= 10).and_then(|end| {
            let entity = &rest[1..end];
            let c = match entity {
                "lt" => Some('<'),
                "gt" => Some('>'),
                "amp" => Some('&'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => entity
                    .strip_prefix("#x")
                    .or_else(|| entity.strip_prefix("#X"))
                    .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                    .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `%XX` escapes of a URL path segment.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 3 <= bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> Url {
        Url::parse("http://127.0.0.1:1/simple/foo/").unwrap()
    }

    #[test]
    fn reads_html_anchors_with_their_attributes() {
        let hash = "ab".repeat(32);
        let html = format!(
            r#"<!DOCTYPE html><html><head><title>Links for foo</title></head><body>
            <!-- <a href="commented.whl">no</a> -->
            <a href="../../files/foo-1.0-py3-none-any.whl#sha256={hash}" data-requires-python="&gt;=3.8" data-core-metadata="sha256={hash}">foo-1.0-py3-none-any.whl</a><br/>
            <a href='https://files.example/foo-0.9.tar.gz' data-yanked="">foo-0.9.tar.gz</a>
            <a href=foo%2B1-2.0-py3-none-any.whl>foo+1-2.0-py3-none-any.whl</a>
            </body></html>"#
        );
        let files = parse_html(html.as_bytes(), &page()).unwrap();
        assert_eq!(files.len(), 3);
        assert_eq!(files[0].filename, "foo-1.0-py3-none-any.whl");
        assert_eq!(
            files[0].location,
            FileLocation::Url(
                Url::parse("http://127.0.0.1:1/files/foo-1.0-py3-none-any.whl").unwrap()
            )
        );
        assert_eq!(files[0].sha256.as_ref().unwrap().as_str(), hash);
        assert_eq!(
            files[0].requires_python.as_ref().unwrap().to_string(),
            ">=3.8"
        );
        assert!(matches!(
            files[0].metadata,
            MetadataOffer::Yes { sha256: Some(_) }
        ));
        assert!(!files[0].yanked);
        assert!(files[1].yanked);
        assert_eq!(files[1].metadata, MetadataOffer::No);
        assert_eq!(files[2].filename, "foo+1-2.0-py3-none-any.whl");
    }

    #[test]
    fn garbage_html_lists_nothing() {
        for garbage in [
            "",
            "<<<>>>",
            "<a",
            "<a href=\"x",
            "\u{0}\u{1}<a b='>",
            "<html><body>no links</body>",
        ] {
            let files = parse_html(garbage.as_bytes(), &page()).unwrap();
            assert!(files.len() <= 1, "{garbage}");
        }
    }

    #[test]
    fn reads_json_pages() {
        let json = r#"{"meta":{"api-version":"1.1"},"name":"foo","files":[
            {"filename":"foo-1.0-py3-none-any.whl","url":"/files/foo-1.0-py3-none-any.whl","hashes":{"sha256":"ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB"},"requires-python":">=3.7","core-metadata":{"sha256":"abababababababababababababababababababababababababababababababab"}},
            {"filename":"foo-0.1-py3-none-any.whl","url":"foo-0.1-py3-none-any.whl","hashes":{},"yanked":"broken","dist-info-metadata":true}]}"#;
        let files = parse_json(json.as_bytes(), &page()).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(
            files[0].location,
            FileLocation::Url(
                Url::parse("http://127.0.0.1:1/files/foo-1.0-py3-none-any.whl").unwrap()
            )
        );
        assert!(files[0].sha256.is_some());
        assert!(files[1].yanked);
        assert_eq!(files[1].metadata, MetadataOffer::Yes { sha256: None });
        assert_eq!(
            files[1].location,
            FileLocation::Url(
                Url::parse("http://127.0.0.1:1/simple/foo/foo-0.1-py3-none-any.whl").unwrap()
            )
        );
    }

    #[test]
    fn refuses_bad_json() {
        for bad in [
            "",
            "{",
            "[]",
            r#"{"meta":{"api-version":"2.0"},"files":[]}"#,
            r#"{"meta":{"api-version":"1.0"},"files":[{"filename":"x"}]}"#,
        ] {
            let err = parse_json(bad.as_bytes(), &page()).unwrap_err();
            assert!(
                err.to_string().contains("not a valid JSON simple-API page"),
                "{err}"
            );
        }
    }

    #[test]
    fn decodes_entities() {
        assert_eq!(
            decode_entities("&lt;3&amp;&#62;&#x3d;&bogus;&"),
            "<3&>=&bogus;&"
        );
    }
}
