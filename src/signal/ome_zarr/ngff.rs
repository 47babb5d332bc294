//! The OME-NGFF metadata of a multiscale image: axes (names, types, units) mapped from a
//! signal's axes, and the `multiscales` document of versions 0.4 and 0.5.
//!
//! The mapping rules (array order is kept; OME-NGFF allows 2 to 5 axes):
//!
//! * **space**: the downsampled axes, plus, when only two are downsampled, the axis just
//!   before them if its unit is a length (at most three space axes; they must be last).
//! * **time**: an axis whose unit is a time (`s`, `ms`, `µs`, `ns`, `ps`, `min`, `h`); it
//!   must be the first axis.
//! * the other axes: the one just before the space axes is a custom axis (no `type`), the
//!   one before that is `channel`. More is an error.
//!
//! Names are the signal's axis names when all are set, distinct and not `<undefined>`;
//! otherwise `z`/`y`/`x` for space axes, `t` for time, `c` for channel and `dim<i>` for a
//! custom axis. Units are mapped to UDUNITS names (`nm` → `nanometer`); a unit with no
//! UDUNITS name (`1/nm`, `eV`) is left out.

use crate::signal::axes::Axis;
use crate::signal::json::Json;

/// An OME-NGFF version that lazyspy writes and reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OmeVersion {
    /// 0.4: Zarr v2, `multiscales` in the root `.zattrs`.
    V04,
    /// 0.5: Zarr v3, `ome.multiscales` in the root `zarr.json` attributes.
    V05,
}

impl OmeVersion {
    /// `"0.4"` or `"0.5"`.
    pub fn as_str(self) -> &'static str {
        match self {
            OmeVersion::V04 => "0.4",
            OmeVersion::V05 => "0.5",
        }
    }

    /// Parses `"0.4"` / `"0.5"`.
    ///
    /// ```
    /// use lazyspy::signal::ome_zarr::OmeVersion;
    /// assert_eq!(OmeVersion::parse("0.5"), Some(OmeVersion::V05));
    /// assert_eq!(OmeVersion::parse("0.3"), None);
    /// ```
    pub fn parse(text: &str) -> Option<OmeVersion> {
        match text {
            "0.4" => Some(OmeVersion::V04),
            "0.5" => Some(OmeVersion::V05),
            _ => None,
        }
    }
}

/// The kind of an OME-NGFF axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OmeAxisType {
    /// `"space"`.
    Space,
    /// `"time"`.
    Time,
    /// `"channel"`.
    Channel,
    /// No `type` key (a custom axis).
    Custom,
}

impl OmeAxisType {
    /// The `type` value, `None` for a custom axis.
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            OmeAxisType::Space => Some("space"),
            OmeAxisType::Time => Some("time"),
            OmeAxisType::Channel => Some("channel"),
            OmeAxisType::Custom => None,
        }
    }
}

/// One axis of an OME-NGFF image.
#[derive(Clone, Debug, PartialEq)]
pub struct OmeAxis {
    /// The axis name (unique in the image).
    pub name: String,
    /// Its type.
    pub kind: OmeAxisType,
    /// Its UDUNITS unit, when it has one.
    pub unit: Option<String>,
}

impl OmeAxis {
    /// The axis as an entry of `multiscales[0].axes`.
    pub fn to_json(&self) -> Json {
        let mut fields = vec![("name".to_string(), Json::Str(self.name.clone()))];
        if let Some(t) = self.kind.as_str() {
            fields.push(("type".into(), Json::Str(t.into())));
        }
        if let Some(u) = &self.unit {
            fields.push(("unit".into(), Json::Str(u.clone())));
        }
        Json::Object(fields)
    }
}

/// HyperSpy unit spellings and their UDUNITS names (length, then time).
const UNIT_NAMES: &[(&str, &str)] = &[
    ("pm", "picometer"),
    ("Å", "angstrom"),
    ("A", "angstrom"),
    ("nm", "nanometer"),
    ("µm", "micrometer"),
    ("μm", "micrometer"),
    ("um", "micrometer"),
    ("mm", "millimeter"),
    ("cm", "centimeter"),
    ("m", "meter"),
    ("ps", "picosecond"),
    ("ns", "nanosecond"),
    ("µs", "microsecond"),
    ("μs", "microsecond"),
    ("us", "microsecond"),
    ("ms", "millisecond"),
    ("s", "second"),
    ("min", "minute"),
    ("h", "hour"),
];

/// UDUNITS names of lengths that OME-NGFF lists.
const LENGTH_UNITS: &[&str] = &[
    "angstrom",
    "attometer",
    "centimeter",
    "decimeter",
    "exameter",
    "femtometer",
    "foot",
    "gigameter",
    "hectometer",
    "inch",
    "kilometer",
    "megameter",
    "meter",
    "micrometer",
    "mile",
    "millimeter",
    "nanometer",
    "parsec",
    "petameter",
    "picometer",
    "terameter",
    "yard",
    "yoctometer",
    "yottameter",
    "zeptometer",
    "zettameter",
];

/// UDUNITS names of times that OME-NGFF lists.
const TIME_UNITS: &[&str] = &[
    "attosecond",
    "centisecond",
    "day",
    "decisecond",
    "exasecond",
    "femtosecond",
    "gigasecond",
    "hectosecond",
    "hour",
    "kilosecond",
    "megasecond",
    "microsecond",
    "millisecond",
    "minute",
    "nanosecond",
    "petasecond",
    "picosecond",
    "second",
    "terasecond",
    "yoctosecond",
    "yottasecond",
    "zeptosecond",
    "zettasecond",
];

/// The UDUNITS name OME-NGFF uses for a HyperSpy unit, if it has one.
///
/// ```
/// use lazyspy::signal::ome_zarr::udunits_name;
/// assert_eq!(udunits_name("nm"), Some("nanometer"));
/// assert_eq!(udunits_name("µm"), Some("micrometer"));
/// assert_eq!(udunits_name("second"), Some("second"));
/// assert_eq!(udunits_name("1/nm"), None);
/// ```
pub fn udunits_name(unit: &str) -> Option<&'static str> {
    let unit = unit.trim();
    if let Some((_, name)) = UNIT_NAMES.iter().find(|(short, _)| *short == unit) {
        return Some(name);
    }
    LENGTH_UNITS
        .iter()
        .chain(TIME_UNITS)
        .find(|name| **name == unit)
        .copied()
}

/// The short HyperSpy spelling of an OME-NGFF unit (`nanometer` → `nm`); other units are
/// returned as they are.
///
/// ```
/// use lazyspy::signal::ome_zarr::hyperspy_unit;
/// assert_eq!(hyperspy_unit("micrometer"), "µm");
/// assert_eq!(hyperspy_unit("parsec"), "parsec");
/// ```
pub fn hyperspy_unit(unit: &str) -> String {
    UNIT_NAMES
        .iter()
        .find(|(short, name)| *name == unit && !matches!(*short, "A" | "μm" | "um" | "μs" | "us"))
        .map(|(short, _)| short.to_string())
        .unwrap_or_else(|| unit.to_string())
}

fn is_length(unit: Option<&str>) -> bool {
    unit.is_some_and(|u| LENGTH_UNITS.contains(&u))
}

fn is_time(unit: Option<&str>) -> bool {
    unit.is_some_and(|u| TIME_UNITS.contains(&u))
}

/// The OME-NGFF axes of a signal whose axes (array order) are `axes`, downsampled along
/// `downsampled` (array indices, ascending). Errors say which rule the axes break.
pub fn ome_axes(axes: &[Axis], downsampled: &[usize]) -> Result<Vec<OmeAxis>, String> {
    let n = axes.len();
    if !(2..=5).contains(&n) {
        return Err(format!(
            "OME-Zarr images have 2 to 5 axes; this signal has {n}"
        ));
    }
    let units: Vec<Option<&'static str>> = axes
        .iter()
        .map(|a| a.units().and_then(udunits_name))
        .collect();
    if downsampled.len() < 2 || downsampled.len() > 3 {
        return Err(format!(
            "OME-Zarr images have 2 or 3 space axes; {} axes are downsampled",
            downsampled.len()
        ));
    }
    let first_space = downsampled[0];
    if downsampled
        .iter()
        .enumerate()
        .any(|(i, &d)| d != first_space + i)
        || downsampled[downsampled.len() - 1] != n - 1
    {
        return Err(format!(
            "OME-Zarr needs its space axes last and together; the downsampled axes {downsampled:?} \
             are not the last {} of {n}",
            downsampled.len()
        ));
    }
    let mut kinds = vec![OmeAxisType::Custom; n];
    let mut space_start = first_space;
    if downsampled.len() == 2 && space_start > 0 && is_length(units[space_start - 1]) {
        space_start -= 1;
    }
    for k in kinds.iter_mut().skip(space_start) {
        *k = OmeAxisType::Space;
    }
    let mut rest: Vec<usize> = (0..space_start).collect();
    if let Some(t) = rest.iter().position(|&i| is_time(units[i])) {
        if rest[t] != 0 {
            return Err(format!(
                "axis {} has a time unit, and OME-Zarr wants the time axis first",
                rest[t]
            ));
        }
        kinds[0] = OmeAxisType::Time;
        rest.remove(t);
    }
    if let Some(t) = rest.iter().find(|&&i| is_time(units[i])) {
        return Err(format!(
            "axes 0 and {t} both have time units; OME-Zarr allows one time axis"
        ));
    }
    match rest.len() {
        0 => {}
        1 => kinds[rest[0]] = OmeAxisType::Custom,
        2 => {
            kinds[rest[0]] = OmeAxisType::Channel;
            kinds[rest[1]] = OmeAxisType::Custom;
        }
        k => {
            return Err(format!(
                "{k} axes are neither space nor time; OME-Zarr allows one channel and one \
                 custom axis"
            ));
        }
    }
    let given: Vec<Option<&str>> = axes
        .iter()
        .map(|a| a.name().filter(|s| !s.is_empty() && *s != "<undefined>"))
        .collect();
    let distinct = {
        let mut names: Vec<&str> = given.iter().flatten().copied().collect();
        names.sort_unstable();
        names.dedup();
        names.len() == n
    };
    let space_count = n - space_start;
    let names: Vec<String> = (0..n)
        .map(|i| {
            if distinct {
                return given[i].unwrap_or_default().to_string();
            }
            match kinds[i] {
                OmeAxisType::Space => ["z", "y", "x"][3 - space_count + (i - space_start)].into(),
                OmeAxisType::Time => "t".into(),
                OmeAxisType::Channel => "c".into(),
                OmeAxisType::Custom => format!("dim{i}"),
            }
        })
        .collect();
    Ok((0..n)
        .map(|i| OmeAxis {
            name: names[i].clone(),
            kind: kinds[i],
            unit: units[i].map(str::to_string),
        })
        .collect())
}

/// The coordinate transformations of one level: `scale` then `translation`.
#[derive(Clone, Debug, PartialEq)]
pub struct LevelTransform {
    /// The dataset path (`"0"`, `"1"`, ...).
    pub path: String,
    /// Physical size of one sample along each axis.
    pub scale: Vec<f64>,
    /// Physical position of the first sample along each axis.
    pub translation: Vec<f64>,
}

fn floats(values: &[f64]) -> Json {
    Json::Array(values.iter().map(|&v| Json::Float(v)).collect())
}

/// The `multiscales` entry of an image: name, axes and datasets with their scale and
/// translation (with `"version": "0.4"` for version 0.4, none for 0.5).
pub fn multiscale_json(
    version: OmeVersion,
    name: &str,
    axes: &[OmeAxis],
    levels: &[LevelTransform],
) -> Json {
    let datasets = levels
        .iter()
        .map(|l| {
            Json::Object(vec![
                ("path".into(), Json::Str(l.path.clone())),
                (
                    "coordinateTransformations".into(),
                    Json::Array(vec![
                        Json::Object(vec![
                            ("type".into(), Json::Str("scale".into())),
                            ("scale".into(), floats(&l.scale)),
                        ]),
                        Json::Object(vec![
                            ("type".into(), Json::Str("translation".into())),
                            ("translation".into(), floats(&l.translation)),
                        ]),
                    ]),
                ),
            ])
        })
        .collect();
    let mut fields = vec![
        ("name".to_string(), Json::Str(name.to_string())),
        (
            "axes".into(),
            Json::Array(axes.iter().map(OmeAxis::to_json).collect()),
        ),
        ("datasets".into(), Json::Array(datasets)),
    ];
    if version == OmeVersion::V04 {
        fields.push(("version".into(), Json::Str("0.4".into())));
    }
    Json::Object(fields)
}

/// The root group attributes of an image: `{"multiscales": [M]}` for 0.4,
/// `{"ome": {"version": "0.5", "multiscales": [M]}}` for 0.5.
pub fn root_attributes(version: OmeVersion, multiscale: Json) -> Json {
    let list = Json::Array(vec![multiscale]);
    match version {
        OmeVersion::V04 => Json::Object(vec![("multiscales".into(), list)]),
        OmeVersion::V05 => Json::Object(vec![(
            "ome".into(),
            Json::Object(vec![
                ("version".into(), Json::Str("0.5".into())),
                ("multiscales".into(), list),
            ]),
        )]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axis(name: Option<&str>, units: Option<&str>, nav: bool) -> Axis {
        Axis::uniform(name, units, 8, 1.0, 0.0, nav)
    }

    #[test]
    fn image_stack_axes_get_defaults_and_units() {
        let axes = [
            axis(Some("image"), None, true),
            axis(None, Some("nm"), false),
            axis(None, Some("nm"), false),
        ];
        let ome = ome_axes(&axes, &[1, 2]).unwrap();
        let names: Vec<&str> = ome.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["dim0", "y", "x"]);
        assert_eq!(ome[0].kind, OmeAxisType::Custom);
        assert_eq!(ome[1].unit.as_deref(), Some("nanometer"));
        assert_eq!(ome[2].kind, OmeAxisType::Space);
    }

    #[test]
    fn a_length_axis_before_the_plane_becomes_z() {
        let axes = [
            axis(Some("t"), Some("s"), true),
            axis(Some("c"), None, true),
            axis(Some("depth"), Some("µm"), true),
            axis(Some("row"), Some("µm"), false),
            axis(Some("col"), Some("µm"), false),
        ];
        let ome = ome_axes(&axes, &[3, 4]).unwrap();
        let kinds: Vec<OmeAxisType> = ome.iter().map(|a| a.kind).collect();
        assert_eq!(
            kinds,
            [
                OmeAxisType::Time,
                OmeAxisType::Custom,
                OmeAxisType::Space,
                OmeAxisType::Space,
                OmeAxisType::Space
            ]
        );
        assert_eq!(ome[0].unit.as_deref(), Some("second"));
        assert_eq!(ome[2].name, "depth");
    }

    #[test]
    fn four_d_stem_gets_channel_and_custom() {
        let axes = [
            axis(Some("y"), Some("1/nm"), true),
            axis(Some("x"), None, true),
            axis(Some("ky"), Some("1/nm"), false),
            axis(Some("kx"), Some("1/nm"), false),
        ];
        let ome = ome_axes(&axes, &[2, 3]).unwrap();
        assert_eq!(ome[0].kind, OmeAxisType::Channel);
        assert_eq!(ome[1].kind, OmeAxisType::Custom);
        assert!(ome.iter().all(|a| a.unit.is_none()));
    }

    #[test]
    fn forbidden_layouts_are_errors() {
        let six: Vec<Axis> = (0..6).map(|_| axis(None, None, true)).collect();
        assert!(ome_axes(&six, &[4, 5]).unwrap_err().contains("2 to 5 axes"));
        let late_time = [
            axis(None, None, true),
            axis(None, Some("s"), true),
            axis(None, None, false),
            axis(None, None, false),
        ];
        assert!(
            ome_axes(&late_time, &[2, 3])
                .unwrap_err()
                .contains("time axis first")
        );
        let three_nav = [
            axis(None, None, true),
            axis(None, None, true),
            axis(None, None, true),
            axis(None, None, false),
            axis(None, None, false),
        ];
        assert!(
            ome_axes(&three_nav, &[3, 4])
                .unwrap_err()
                .contains("one channel")
        );
        let plane = [
            axis(None, None, false),
            axis(None, None, false),
            axis(None, None, false),
        ];
        assert!(ome_axes(&plane, &[0, 1]).unwrap_err().contains("last"));
    }

    #[test]
    fn units_map_both_ways() {
        for (short, long) in [
            ("nm", "nanometer"),
            ("µm", "micrometer"),
            ("Å", "angstrom"),
            ("ms", "millisecond"),
        ] {
            assert_eq!(udunits_name(short), Some(long));
            assert_eq!(hyperspy_unit(long), short);
        }
        assert_eq!(udunits_name("eV"), None);
        assert_eq!(udunits_name("<undefined>"), None);
    }

    #[test]
    fn multiscales_documents_follow_each_version() {
        let axes = [
            OmeAxis {
                name: "y".into(),
                kind: OmeAxisType::Space,
                unit: None,
            },
            OmeAxis {
                name: "x".into(),
                kind: OmeAxisType::Space,
                unit: Some("nanometer".into()),
            },
        ];
        let levels = [LevelTransform {
            path: "0".into(),
            scale: vec![1.0, 2.0],
            translation: vec![0.0, 0.5],
        }];
        let m = multiscale_json(OmeVersion::V04, "img", &axes, &levels);
        let v4 = crate::signal::json::to_zarr_string(&root_attributes(OmeVersion::V04, m));
        assert!(v4.contains("\"version\": \"0.4\""), "{v4}");
        assert!(v4.contains("\"unit\": \"nanometer\""));
        let m = multiscale_json(OmeVersion::V05, "img", &axes, &levels);
        let v5 = crate::signal::json::to_zarr_string(&root_attributes(OmeVersion::V05, m));
        assert!(v5.starts_with("{\n    \"ome\""), "{v5}");
        assert_eq!(v5.matches("\"version\"").count(), 1);
    }
}
