//! Normalisation before any rule runs: NFKC, invisible characters out (and reported), combining
//! marks out, confusable letters to their Latin skeleton, lower case. Every byte of the output
//! remembers the byte of the input it came from, so findings point into the original text.

use unicode_normalization::UnicodeNormalization as _;
use unicode_normalization::char::is_combining_mark;

/// Text ready for matching, with a map back to the original.
#[derive(Debug, Default)]
pub(crate) struct Normalized {
    /// NFKC, invisible characters and combining marks removed, confusables folded, lower case.
    pub(crate) text: String,
    /// For each byte of `text`, the byte offset in the original it came from.
    pub(crate) origin: Vec<u32>,
    /// Invisible characters removed: (original byte offset, char).
    pub(crate) invisible: Vec<(usize, char)>,
    /// ASCII smuggled in Unicode tag characters (U+E0020..=U+E007E), decoded, with the original
    /// offset of the first tag of each run.
    pub(crate) smuggled: Vec<(usize, String)>,
}

impl Normalized {
    /// The original byte range of `text[start..end]`.
    pub(crate) fn original_range(&self, start: usize, end: usize) -> (usize, usize) {
        let first = self.origin.get(start).map_or(0, |&o| o as usize);
        let last = end
            .checked_sub(1)
            .and_then(|i| self.origin.get(i))
            .map_or(first, |&o| o as usize);
        (first, last.max(first) + 1)
    }
}

/// A byte offset as stored in the maps (inputs are capped far below 4 GiB).
fn at32(at: usize) -> u32 {
    u32::try_from(at).unwrap_or(u32::MAX)
}

/// Zero-width, bidirectional-control, tag and other invisible format characters.
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}'
        | '\u{3164}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{FE00}'..='\u{FE0F}'
        | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0000}'..='\u{E0FFF}')
}

/// Latin letters that other scripts' lookalikes stand for (a small confusables skeleton for the
/// letters attacks use; NFKC already folds full-width and mathematical letters).
fn skeleton(c: char) -> char {
    match c {
        'а' | 'А' | 'α' | 'Α' => 'a',
        'в' | 'В' | 'β' | 'Β' => 'b',
        'с' | 'С' | 'ϲ' | 'Ϲ' => 'c',
        'ԁ' => 'd',
        'е' | 'Е' | 'ε' | 'Ε' | 'ё' => 'e',
        'һ' | 'Н' | 'Η' => 'h',
        'і' | 'І' | 'ι' | 'Ι' | 'ı' | 'ӏ' => 'i',
        'ј' | 'Ј' => 'j',
        'к' | 'К' | 'κ' | 'Κ' => 'k',
        'м' | 'М' | 'Μ' => 'm',
        'п' | 'ո' => 'n',
        'о' | 'О' | 'ο' | 'Ο' | 'օ' => 'o',
        'р' | 'Р' | 'ρ' | 'Ρ' => 'p',
        'ԛ' => 'q',
        'г' => 'r',
        'ѕ' | 'Ѕ' => 's',
        'т' | 'Т' | 'τ' | 'Τ' => 't',
        'ս' | 'υ' => 'u',
        'ν' | 'ѵ' => 'v',
        'ԝ' | 'ѡ' => 'w',
        'х' | 'Х' | 'χ' | 'Χ' => 'x',
        'у' | 'У' | 'γ' | 'Υ' => 'y',
        'Ζ' => 'z',
        other => other,
    }
}

/// Normalises `input` (the caller caps its size).
pub(crate) fn normalize(input: &str) -> Normalized {
    if input.is_ascii() {
        // ASCII (the common case) only needs lower-casing: one pass, one byte for one byte.
        return Normalized {
            text: input.to_ascii_lowercase(),
            origin: (0..input.len()).map(at32).collect(),
            ..Normalized::default()
        };
    }
    let mut out = Normalized {
        text: String::with_capacity(input.len()),
        origin: Vec::with_capacity(input.len()),
        ..Normalized::default()
    };
    let mut smuggled_run: Option<(usize, String)> = None;
    let mut buf = [0u8; 4];
    for (at, c) in input.char_indices() {
        if is_invisible(c) {
            out.invisible.push((at, c));
            if let Some(ascii) = tag_ascii(c) {
                smuggled_run
                    .get_or_insert_with(|| (at, String::new()))
                    .1
                    .push(ascii);
            } else if let Some(run) = smuggled_run.take() {
                out.smuggled.push(run);
            }
            continue;
        }
        if let Some(run) = smuggled_run.take() {
            out.smuggled.push(run);
        }
        if c.is_ascii() {
            // NFKC, the skeleton and lower-casing leave ASCII as lower-case ASCII.
            out.text.push(c.to_ascii_lowercase());
            out.origin.push(at32(at));
            continue;
        }
        for lower in fold(c) {
            let bytes = lower.encode_utf8(&mut buf).as_bytes();
            out.text.push(lower);
            out.origin
                .extend(std::iter::repeat_n(at32(at), bytes.len()));
        }
    }
    if let Some(run) = smuggled_run.take() {
        out.smuggled.push(run);
    }
    out
}

/// What one character of the input becomes in the normalised text: nothing for an invisible
/// character, else its NFKC form without combining marks, folded to the Latin skeleton and
/// lower-cased. [`normalize`] is this, character by character, plus the byte map and the
/// report of what was removed.
pub(crate) fn fold(c: char) -> impl Iterator<Item = char> {
    std::iter::once(c)
        .filter(|&c| !is_invisible(c))
        .nfkc()
        .filter(|&f| !is_combining_mark(f) && !is_invisible(f))
        .flat_map(|f| skeleton(f).to_lowercase().map(skeleton))
}

/// The normalised text of `input` as a stream of characters, without the byte map: the same
/// text as `normalize(input).text`, in constant memory (for fingerprinting untrusted text
/// of any length).
pub(crate) fn folded(input: &str) -> impl Iterator<Item = char> + '_ {
    input.chars().flat_map(fold)
}

/// The ASCII character a Unicode tag character stands for.
fn tag_ascii(c: char) -> Option<char> {
    let code = u32::from(c);
    (0xE0020..=0xE007E)
        .contains(&code)
        .then(|| char::from_u32(code - 0xE0000))
        .flatten()
}

/// A word-level view of normalised text: lower-case alphanumeric words separated by one space,
/// each byte mapped to a byte of the normalised text. Spacing and punctuation tricks vanish.
#[derive(Debug, Default)]
pub(crate) struct Words {
    pub(crate) text: String,
    pub(crate) origin: Vec<u32>,
}

pub(crate) fn words(normalized: &str) -> Words {
    let mut out = Words {
        text: String::with_capacity(normalized.len() + 2),
        origin: Vec::with_capacity(normalized.len() + 2),
    };
    // A leading and trailing space make every word bounded by spaces on both sides.
    out.text.push(' ');
    out.origin.push(0);
    let mut pending_space = false;
    if normalized.is_ascii() {
        let mut bytes = Vec::with_capacity(normalized.len() + 2);
        bytes.push(b' ');
        for (at, &b) in normalized.as_bytes().iter().enumerate() {
            if b.is_ascii_alphanumeric() {
                if pending_space {
                    bytes.push(b' ');
                    out.origin.push(at32(at));
                    pending_space = false;
                }
                bytes.push(b);
                out.origin.push(at32(at));
            } else if bytes.last() != Some(&b' ') {
                pending_space = true;
            }
        }
        bytes.push(b' ');
        out.origin.push(at32(normalized.len()));
        // Only ASCII bytes were pushed.
        out.text = String::from_utf8(bytes).unwrap_or_default();
        return out;
    }
    for (at, c) in normalized.char_indices() {
        if c.is_alphanumeric() {
            if pending_space {
                out.text.push(' ');
                out.origin.push(at32(at));
                pending_space = false;
            }
            let mut buf = [0u8; 4];
            let len = c.encode_utf8(&mut buf).len();
            out.text.push(c);
            out.origin.extend(std::iter::repeat_n(at32(at), len));
        } else if !out.text.ends_with(' ') {
            pending_space = true;
        }
    }
    out.text.push(' ');
    out.origin.push(at32(normalized.len()));
    out
}

/// What one byte of lower-case ASCII text becomes in the squeezed view: digit-for-letter swaps
/// undone, then kept if it is a letter or digit.
#[inline]
pub(crate) fn squeezed_byte(b: u8) -> Option<u8> {
    let b = match b {
        b'0' => b'o',
        b'1' | b'!' | b'|' => b'i',
        b'3' => b'e',
        b'4' | b'@' => b'a',
        b'5' | b'$' => b's',
        b'7' => b't',
        b => b,
    };
    b.is_ascii_alphanumeric().then_some(b)
}

/// Letters and digits only, with common digit-for-letter swaps undone: defeats "i.g.n.o.r.e",
/// "i g n o r e" and "1gn0re". Used only for long phrases, which rarely occur by accident.
pub(crate) fn squeezed(normalized: &str) -> Words {
    let mut out = Words {
        text: String::with_capacity(normalized.len()),
        origin: Vec::with_capacity(normalized.len()),
    };
    if normalized.is_ascii() {
        let mut bytes = Vec::with_capacity(normalized.len());
        for (at, &b) in normalized.as_bytes().iter().enumerate() {
            if let Some(b) = squeezed_byte(b) {
                bytes.push(b);
                out.origin.push(at32(at));
            }
        }
        out.text = String::from_utf8(bytes).unwrap_or_default();
        return out;
    }
    for (at, c) in normalized.char_indices() {
        let kept = match u8::try_from(c) {
            Ok(b) if b.is_ascii() => squeezed_byte(b).map(char::from),
            _ => c.is_alphanumeric().then_some(c),
        };
        if let Some(c) = kept {
            let mut buf = [0u8; 4];
            let len = c.encode_utf8(&mut buf).len();
            out.text.push(c);
            out.origin.extend(std::iter::repeat_n(at32(at), len));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_width_confusables_and_case_and_drops_invisibles() {
        let n = normalize("Ｉgn\u{200B}оre PREVIOUS");
        assert_eq!(n.text, "ignore previous");
        // 'Ｉ' is 3 bytes, so the zero-width space sits at byte 5 and the Cyrillic 'о' at 8.
        assert_eq!(n.invisible, vec![(5, '\u{200B}')]);
        assert_eq!(&n.text[3..4], "o");
        assert_eq!(n.origin[3], 8u32);
    }

    #[test]
    fn decodes_tag_smuggling() {
        let hidden: String = "hi you"
            .chars()
            .map(|c| char::from_u32(0xE0000 + u32::from(c)).unwrap())
            .collect();
        let n = normalize(&format!("ok{hidden}!"));
        assert_eq!(n.text, "ok!");
        assert_eq!(n.smuggled, vec![(2, "hi you".to_owned())]);
    }

    #[test]
    fn words_and_squeezed_views_map_back() {
        let w = words("i-g-n-o-r-e   the   rules!");
        assert_eq!(w.text, " i g n o r e the rules ");
        let s = squeezed("1.g.n.0.r.3 a11");
        assert_eq!(s.text, "ignoreaii");
        assert_eq!(s.origin[1], 2u32);
    }

    #[test]
    fn the_character_stream_is_the_normalised_text() {
        for input in [
            "Ｉgn\u{200B}оre PREVIOUS",
            "plain ascii Text",
            "i\u{0301}g\u{0308}nore \u{E0041}x ｅｖｉｌ。test ﬁ ß İ",
            "",
        ] {
            assert_eq!(folded(input).collect::<String>(), normalize(input).text);
        }
    }

    #[test]
    fn combining_marks_are_dropped() {
        assert_eq!(normalize("i\u{0301}g\u{0308}nore").text, "ignore");
    }
}
