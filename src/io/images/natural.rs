//! Natural ("human") ordering of file names: digit runs compare by their numeric value, so
//! `img2.tif` sorts before `img10.tif`.

use std::cmp::Ordering;
use std::path::Path;

/// Compares two strings in natural order.
///
/// The strings are split into runs of ASCII digits and runs of other characters. Digit runs
/// compare by value (any length, no overflow: leading zeros are skipped, then the shorter run
/// is the smaller number); other runs compare character by character. When two strings are
/// equal by that rule (`img01` and `img1`), the one with fewer leading zeros comes first and
/// then plain byte order decides, so the order is total and deterministic.
///
/// ```
/// use lazyspy::io::images::natural_cmp;
/// use std::cmp::Ordering;
/// assert_eq!(natural_cmp("img2.tif", "img10.tif"), Ordering::Less);
/// assert_eq!(natural_cmp("a10b2", "a10b10"), Ordering::Less);
/// assert_eq!(natural_cmp("scan_9", "scan_09"), Ordering::Less);
/// ```
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (ab, bb) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let mut zeros_tiebreak = Ordering::Equal;
    while i < ab.len() && j < bb.len() {
        let (ca, cb) = (ab[i], bb[j]);
        if ca.is_ascii_digit() && cb.is_ascii_digit() {
            let (si, sj) = (i, j);
            while i < ab.len() && ab[i].is_ascii_digit() {
                i += 1;
            }
            while j < bb.len() && bb[j].is_ascii_digit() {
                j += 1;
            }
            let (da, db) = (&ab[si..i], &bb[sj..j]);
            let ta = trim_zeros(da);
            let tb = trim_zeros(db);
            let ord = ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb));
            if ord != Ordering::Equal {
                return ord;
            }
            if zeros_tiebreak == Ordering::Equal {
                zeros_tiebreak = da.len().cmp(&db.len());
            }
        } else {
            // Compare whole characters (UTF-8 sequences compare correctly byte by byte).
            match ca.cmp(&cb) {
                Ordering::Equal => {
                    i += 1;
                    j += 1;
                }
                ord => return ord,
            }
        }
    }
    (ab.len() - i)
        .cmp(&(bb.len() - j))
        .then(zeros_tiebreak)
        .then_with(|| ab.cmp(bb))
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let n = digits.iter().take_while(|&&d| d == b'0').count();
    &digits[n..]
}

/// Compares two paths in natural order of their full (lossy UTF-8) text.
pub fn natural_path_cmp(a: &Path, b: &Path) -> Ordering {
    natural_cmp(&a.to_string_lossy(), &b.to_string_lossy())
}

/// Sorts paths in natural order (see [`natural_cmp`]).
pub fn natural_sort(paths: &mut [std::path::PathBuf]) {
    paths.sort_by(|a, b| natural_path_cmp(a, b));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_by_value() {
        let mut v = vec![
            "img10.tif",
            "img2.tif",
            "img1.tif",
            "img100.tif",
            "img20.tif",
            "img3.tif",
        ];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            v,
            [
                "img1.tif",
                "img2.tif",
                "img3.tif",
                "img10.tif",
                "img20.tif",
                "img100.tif"
            ]
        );
    }

    #[test]
    fn several_number_runs_and_prefixes() {
        let mut v = vec!["s2_t10", "s10_t1", "s2_t9", "s1_t100", "s", "s2"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["s", "s1_t100", "s2", "s2_t9", "s2_t10", "s10_t1"]);
    }

    #[test]
    fn leading_zeros_and_huge_numbers() {
        assert_eq!(natural_cmp("a007", "a7"), Ordering::Greater);
        assert_eq!(natural_cmp("a7", "a007"), Ordering::Less);
        assert_eq!(natural_cmp("a007", "a8"), Ordering::Less);
        assert_eq!(natural_cmp("a0", "a00"), Ordering::Less);
        // Longer than any integer type: compared as digit strings.
        let big = "x123456789012345678901234567890";
        let bigger = "x123456789012345678901234567891";
        assert_eq!(natural_cmp(big, bigger), Ordering::Less);
        assert_eq!(natural_cmp("x99999999999999999999999", big), Ordering::Less);
        assert_eq!(natural_cmp(big, big), Ordering::Equal);
    }

    #[test]
    fn text_and_digits_and_empty() {
        assert_eq!(natural_cmp("", ""), Ordering::Equal);
        assert_eq!(natural_cmp("", "a"), Ordering::Less);
        assert_eq!(natural_cmp("1", "a"), Ordering::Less); // '1' < 'a' in byte order
        assert_eq!(natural_cmp("abc", "abd"), Ordering::Less);
        assert_eq!(natural_cmp("img5.tif", "img5.tiff"), Ordering::Less);
        assert_eq!(natural_cmp("é2", "é10"), Ordering::Less);
    }

    #[test]
    fn order_is_a_total_order_on_a_sample() {
        let v = [
            "a", "a0", "a00", "a1", "a01", "a10", "a2", "b", "a1b", "a1b2", "a1b10", "", "10", "9",
            "09",
        ];
        for x in v {
            assert_eq!(natural_cmp(x, x), Ordering::Equal);
            for y in v {
                assert_eq!(natural_cmp(x, y), natural_cmp(y, x).reverse(), "{x} {y}");
                if x != y {
                    assert_ne!(natural_cmp(x, y), Ordering::Equal, "{x} {y}");
                }
                for z in v {
                    if natural_cmp(x, y) == Ordering::Less && natural_cmp(y, z) == Ordering::Less {
                        assert_eq!(natural_cmp(x, z), Ordering::Less, "{x} {y} {z}");
                    }
                }
            }
        }
    }

    #[test]
    fn paths_sort_naturally() {
        let mut p: Vec<std::path::PathBuf> = ["d/img10.tif", "d/img9.tif", "d/img1.tif"]
            .iter()
            .map(Into::into)
            .collect();
        natural_sort(&mut p);
        assert_eq!(
            p,
            ["d/img1.tif", "d/img9.tif", "d/img10.tif"]
                .iter()
                .map(std::path::PathBuf::from)
                .collect::<Vec<_>>()
        );
    }
}
