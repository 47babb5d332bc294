//! Reading an OME-Zarr multiscale image (OME-NGFF v0.4 on Zarr v2, v0.5 on Zarr v3; the
//! older v0.1–v0.3 too) as a lazy [`Signal`].
//!
//! [`OmeImage::open`] reads the root group's metadata (v0.4: `.zattrs` with `multiscales`;
//! v0.5: `zarr.json` with `attributes.ome`) and the metadata of every level's array, never
//! a chunk. [`OmeImage::signal`] gives one level as a [`Signal`] whose data is a lazy array
//! (chunks decoded on demand, in parallel, by `zarrs`, through
//! [`ZspyArraySource`], which reads v2 and v3 arrays, sharded ones included) with one
//! HyperSpy axis per array axis:
//!
//! * name: the OME axis name; units: the OME unit in HyperSpy's short form
//!   (`micrometer` -> `µm`, see [`hyperspy_unit`]); an axis `type` other than `space`,
//!   `time` or `channel` is read as a custom axis ([`OmeAxisType::Custom`]);
//! * scale and offset: the level's `scale` and `translation` transformations, composed with
//!   the multiscale's own `coordinateTransformations` when present (scale multiplies,
//!   translation adds after scaling);
//! * navigate: `false` for the last two `space` axes (a Signal2D), `true` for the others.
//!
//! The title is the multiscale's `name`; `original_metadata.OME` records the version, the
//! level, its path, transformations and the OME axes. The first multiscale of the image is
//! read (the NGFF spec's default); others are ignored.
//!
//! A store carrying lazyspy's incomplete marker (an interrupted pyramid write) gives
//! [`SignalError::Incomplete`]. Every error names the store and the key.

use std::path::Path;
use std::sync::Arc;

use serde_json::Value as J;

use crate::dtype::DType;
use crate::graph::DynLazyArray;
use crate::signal::axes::Axis;
use crate::signal::model::Signal;
use crate::signal::tree::{Dict, Value};
use crate::signal::zarr_store::ZarrStore;
use crate::signal::zspy_data::ZspyArraySource;
use crate::signal::{Result, SignalError};

use super::ngff::{OmeAxis, OmeAxisType, hyperspy_unit};

/// One level (dataset) of the multiscale pyramid.
#[derive(Clone, Debug, PartialEq)]
pub struct OmeLevel {
    /// The array's path inside the store (`"0"`, `"1"`, ...).
    pub path: String,
    /// The array shape.
    pub shape: Vec<usize>,
    /// The stored chunk shape, clipped to the shape (for a sharded Zarr v3 array: the
    /// shard shape, the unit the engine reads).
    pub chunks: Vec<usize>,
    /// The element type.
    pub dtype: DType,
    /// The physical size of one pixel per axis: the level's `scale` transformation times
    /// the multiscale's own scale (1 where none is stored).
    pub scale: Vec<f64>,
    /// The physical position of the first pixel per axis: the level's `translation` times
    /// the multiscale's scale, plus the multiscale's translation (0 where none is stored).
    pub translation: Vec<f64>,
}

/// An opened OME-Zarr multiscale image: its metadata and the lazy sources of its levels.
///
/// ```no_run
/// use lazyspy::signal::ome_zarr::read::OmeImage;
///
/// let image = OmeImage::open("scan.ome.zarr")?;
/// println!("OME-Zarr v{}, {} levels", image.version(), image.levels().len());
/// for (axis, n) in image.axes().iter().zip(&image.levels()[0].shape) {
///     println!("{} ({:?}): {n}", axis.name, axis.unit);
/// }
/// let coarsest = image.signal(image.levels().len() - 1)?;
/// assert_eq!(coarsest.tree.axes.len(), image.axes().len());
/// # Ok::<(), lazyspy::signal::SignalError>(())
/// ```
pub struct OmeImage {
    file: String,
    root_key: String,
    version: String,
    name: Option<String>,
    axes: Vec<OmeAxis>,
    levels: Vec<OmeLevel>,
    sources: Vec<Arc<ZspyArraySource>>,
}

impl std::fmt::Debug for OmeImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OmeImage")
            .field("file", &self.file)
            .field("version", &self.version)
            .field("name", &self.name)
            .field("axes", &self.axes)
            .field("levels", &self.levels)
            .finish()
    }
}

/// The root metadata document of a store: its key and its attributes.
struct Root {
    key: String,
    attrs: J,
}

/// Reads and parses the JSON document `key` (`None` when absent).
fn read_json(store: &ZarrStore, key: &str) -> Result<Option<J>> {
    let Some(bytes) = store.get(key)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| SignalError::Json {
            file: store.file().to_string(),
            key: key.to_string(),
            line: e.line(),
            column: e.column(),
            msg: e.to_string(),
        })
}

/// The root attributes: `zarr.json`'s `attributes` (Zarr v3), else `.zattrs` (Zarr v2).
fn root_attributes(store: &ZarrStore) -> Result<Root> {
    if let Some(doc) = read_json(store, "/zarr.json")? {
        let attrs = doc.get("attributes").cloned().unwrap_or(J::Null);
        return Ok(Root {
            key: "/zarr.json".into(),
            attrs,
        });
    }
    if let Some(attrs) = read_json(store, "/.zattrs")? {
        return Ok(Root {
            key: "/.zattrs".into(),
            attrs,
        });
    }
    Err(SignalError::Missing {
        file: store.file().to_string(),
        key: "/".into(),
        what: "OME-Zarr root group metadata ('zarr.json' or '.zattrs')".into(),
    })
}

/// The OME namespace of the root attributes: v0.5's `ome` object (`true`), else the
/// attributes themselves (v0.1–v0.4, `false`). `None` when there is no `multiscales` list.
fn ome_namespace(attrs: &J) -> Option<(&J, bool)> {
    let (ns, is_ome) = match attrs.get("ome") {
        Some(ome) if ome.is_object() => (ome, true),
        _ => (attrs, false),
    };
    ns.get("multiscales")
        .and_then(J::as_array)
        .is_some_and(|m| !m.is_empty())
        .then_some((ns, is_ome))
}

/// Whether `path` (a directory or a zip store) is an OME-Zarr image: its root attributes
/// hold a non-empty `multiscales` list (v0.1–v0.4 `.zattrs`, or v0.5 `zarr.json`
/// `attributes.ome`). Reads the root metadata only; any error (no such path, invalid JSON)
/// gives `false`.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// std::fs::write(dir.path().join(".zgroup"), r#"{"zarr_format": 2}"#).unwrap();
/// assert!(!lazyspy::signal::ome_zarr::read::is_ome_zarr(dir.path()));
/// std::fs::write(dir.path().join(".zattrs"), r#"{"multiscales": [{"version": "0.4"}]}"#).unwrap();
/// assert!(lazyspy::signal::ome_zarr::read::is_ome_zarr(dir.path()));
/// ```
pub fn is_ome_zarr(path: impl AsRef<Path>) -> bool {
    let Ok(store) = ZarrStore::open(path) else {
        return false;
    };
    root_attributes(&store).is_ok_and(|r| ome_namespace(&r.attrs).is_some())
}

/// Errors about the root document: the store, the root key and a JSON path in the message.
struct Ctx<'a> {
    file: &'a str,
    key: &'a str,
}

impl Ctx<'_> {
    fn invalid(&self, what: &str, msg: impl std::fmt::Display) -> SignalError {
        SignalError::Invalid {
            file: self.file.to_string(),
            key: self.key.to_string(),
            msg: format!("{what}: {msg}"),
        }
    }

    fn unsupported(&self, what: &str, msg: impl std::fmt::Display) -> SignalError {
        SignalError::Unsupported {
            file: self.file.to_string(),
            key: self.key.to_string(),
            msg: format!("{what}: {msg}"),
        }
    }
}

/// A parsed `coordinateTransformations` list: a scale and a translation per axis.
struct Transform {
    scale: Vec<f64>,
    translation: Vec<f64>,
}

fn numbers(ctx: &Ctx, what: &str, v: Option<&J>, n: usize) -> Result<Vec<f64>> {
    let list = v
        .and_then(J::as_array)
        .ok_or_else(|| ctx.invalid(what, "expected a list of numbers"))?;
    let out: Vec<f64> = list
        .iter()
        .map(|x| x.as_f64().filter(|f| f.is_finite()))
        .collect::<Option<_>>()
        .ok_or_else(|| ctx.invalid(what, format!("expected finite numbers, got {v:?}")))?;
    if out.len() != n {
        return Err(ctx.invalid(
            what,
            format!("has {} values but the image has {n} axes", out.len()),
        ));
    }
    Ok(out)
}

/// Parses a `coordinateTransformations` list (NGFF 0.4+): one `scale` (required for a
/// dataset), then at most one `translation`; `identity` entries are no-ops.
fn transform(ctx: &Ctx, what: &str, v: &J, n: usize, need_scale: bool) -> Result<Transform> {
    let list = v
        .as_array()
        .ok_or_else(|| ctx.invalid(what, "expected a list"))?;
    let mut t = Transform {
        scale: vec![1.0; n],
        translation: vec![0.0; n],
    };
    let (mut has_scale, mut has_translation) = (false, false);
    for (i, item) in list.iter().enumerate() {
        let w = format!("{what}[{i}]");
        let kind = item
            .get("type")
            .and_then(J::as_str)
            .ok_or_else(|| ctx.invalid(&w, "no 'type'"))?;
        if item.get("path").is_some() {
            return Err(ctx.unsupported(&w, "transformations stored in a 'path' are not read"));
        }
        match kind {
            "identity" => {}
            "scale" if !has_scale && !has_translation => {
                t.scale = numbers(ctx, &format!("{w}.scale"), item.get("scale"), n)?;
                has_scale = true;
            }
            "translation" if has_scale && !has_translation => {
                t.translation =
                    numbers(ctx, &format!("{w}.translation"), item.get("translation"), n)?;
                has_translation = true;
            }
            "scale" | "translation" => {
                return Err(ctx.invalid(&w, "expected one 'scale' then at most one 'translation'"));
            }
            other => {
                return Err(ctx.unsupported(&w, format!("transformation type '{other}'")));
            }
        }
    }
    if need_scale && !has_scale {
        return Err(ctx.invalid(what, "no 'scale' transformation"));
    }
    Ok(t)
}

/// The axis type of a `type` value (other values and none: custom).
fn axis_type(t: Option<&str>) -> OmeAxisType {
    match t {
        Some("space") => OmeAxisType::Space,
        Some("time") => OmeAxisType::Time,
        Some("channel") => OmeAxisType::Channel,
        _ => OmeAxisType::Custom,
    }
}

/// The axes of a multiscale: objects (v0.4+), names (v0.3), or the implicit `tczyx` of
/// v0.1/v0.2.
fn parse_axes(ctx: &Ctx, version: &str, m: &J) -> Result<Vec<OmeAxis>> {
    let implied = |name: &str| OmeAxis {
        name: name.to_string(),
        kind: axis_type(match name {
            "x" | "y" | "z" => Some("space"),
            "t" => Some("time"),
            "c" => Some("channel"),
            _ => None,
        }),
        unit: None,
    };
    let Some(list) = m.get("axes") else {
        if matches!(version, "0.1" | "0.2") {
            return Ok(["t", "c", "z", "y", "x"].map(implied).to_vec());
        }
        return Err(ctx.invalid("multiscales[0].axes", "missing"));
    };
    let list = list
        .as_array()
        .ok_or_else(|| ctx.invalid("multiscales[0].axes", "expected a list"))?;
    let mut axes = Vec::with_capacity(list.len());
    for (i, a) in list.iter().enumerate() {
        let what = format!("multiscales[0].axes[{i}]");
        let axis = match a {
            J::String(name) => implied(name),
            J::Object(_) => {
                let text = |key: &str| -> Result<Option<String>> {
                    match a.get(key) {
                        None | Some(J::Null) => Ok(None),
                        Some(J::String(s)) => Ok(Some(s.clone())),
                        Some(v) => Err(ctx.invalid(
                            &format!("{what}.{key}"),
                            format!("expected a string, got {v}"),
                        )),
                    }
                };
                OmeAxis {
                    name: text("name")?.ok_or_else(|| ctx.invalid(&what, "no 'name'"))?,
                    kind: axis_type(text("type")?.as_deref()),
                    unit: text("unit")?,
                }
            }
            v => return Err(ctx.invalid(&what, format!("expected an object, got {v}"))),
        };
        if axes.iter().any(|b: &OmeAxis| b.name == axis.name) {
            return Err(ctx.invalid(&what, format!("the name '{}' is repeated", axis.name)));
        }
        axes.push(axis);
    }
    Ok(axes)
}

impl OmeImage {
    /// Opens the OME-Zarr image at `path` (a directory or a zip store): the root metadata
    /// and every level's array metadata; no chunk is read.
    ///
    /// Errors name the store and the key: a missing path ([`SignalError::Io`]), an
    /// incomplete store ([`SignalError::Incomplete`]), no root metadata
    /// ([`SignalError::Missing`]), a root without `multiscales` (not an OME-Zarr image), an
    /// inconsistent document (axes, transformations, a level whose axes count differs from
    /// its array's dimensions: [`SignalError::Invalid`]), a missing level array
    /// ([`SignalError::Missing`]), an unsupported version, transformation, element type or
    /// codec ([`SignalError::Unsupported`]).
    pub fn open(path: impl AsRef<Path>) -> Result<OmeImage> {
        let store = ZarrStore::open(path)?;
        store.check_complete()?;
        let root = root_attributes(&store)?;
        let file = store.file().to_string();
        let ctx = Ctx {
            file: &file,
            key: &root.key,
        };
        let (ns, is_ome) = ome_namespace(&root.attrs).ok_or_else(|| {
            ctx.invalid(
                "not an OME-Zarr image",
                "the root attributes hold no 'multiscales' list",
            )
        })?;
        let m = &ns["multiscales"][0];
        if !m.is_object() {
            return Err(ctx.invalid("multiscales[0]", "expected an object"));
        }
        // v0.5 keeps the version in `ome`; older versions in the multiscale (or, rarely,
        // next to `multiscales`).
        let version = if is_ome {
            ns.get("version").or_else(|| m.get("version"))
        } else {
            m.get("version").or_else(|| ns.get("version"))
        };
        let version = version
            .and_then(J::as_str)
            .ok_or_else(|| ctx.unsupported("multiscales[0].version", "no OME-NGFF version"))?
            .to_string();
        if !matches!(version.as_str(), "0.1" | "0.2" | "0.3" | "0.4" | "0.5") {
            return Err(ctx.unsupported(
                "version",
                format!("OME-NGFF version '{version}' (0.1 to 0.5 are read)"),
            ));
        }
        let modern = matches!(version.as_str(), "0.4" | "0.5");
        let axes = parse_axes(&ctx, &version, m)?;
        let n = axes.len();
        let global = match m.get("coordinateTransformations") {
            Some(t) if modern => Some(transform(
                &ctx,
                "multiscales[0].coordinateTransformations",
                t,
                n,
                false,
            )?),
            _ => None,
        };
        let datasets = m
            .get("datasets")
            .and_then(J::as_array)
            .filter(|d| !d.is_empty())
            .ok_or_else(|| ctx.invalid("multiscales[0].datasets", "expected a non-empty list"))?;
        let mut levels = Vec::with_capacity(datasets.len());
        let mut sources = Vec::with_capacity(datasets.len());
        for (k, d) in datasets.iter().enumerate() {
            let what = format!("multiscales[0].datasets[{k}]");
            let path = d
                .get("path")
                .and_then(J::as_str)
                .filter(|p| !p.is_empty())
                .ok_or_else(|| ctx.invalid(&what, "no 'path'"))?
                .trim_matches('/')
                .to_string();
            let mut t = match (modern, d.get("coordinateTransformations")) {
                (true, Some(v)) => transform(
                    &ctx,
                    &format!("{what}.coordinateTransformations"),
                    v,
                    n,
                    true,
                )?,
                (true, None) => {
                    return Err(ctx.invalid(&what, "no 'coordinateTransformations'"));
                }
                (false, _) => Transform {
                    scale: vec![1.0; n],
                    translation: vec![0.0; n],
                },
            };
            if let Some(g) = &global {
                for i in 0..n {
                    t.scale[i] *= g.scale[i];
                    t.translation[i] = t.translation[i] * g.scale[i] + g.translation[i];
                }
            }
            let source = open_level(&store, &path)?;
            let grid = crate::io::ChunkSource::grid(&source);
            let shape = grid.shape();
            if shape.len() != n {
                return Err(SignalError::Invalid {
                    file: file.clone(),
                    key: format!("/{path}"),
                    msg: format!(
                        "the array has {} dimensions {shape:?} but the image has {n} axes \
                         in '{}'",
                        shape.len(),
                        root.key
                    ),
                });
            }
            let chunks = (0..n)
                .map(|i| grid.axis_chunks(i).first().copied().unwrap_or(0))
                .collect();
            levels.push(OmeLevel {
                path,
                shape,
                chunks,
                dtype: crate::io::ChunkSource::dtype(&source),
                scale: t.scale,
                translation: t.translation,
            });
            sources.push(Arc::new(source));
        }
        Ok(OmeImage {
            name: m.get("name").and_then(J::as_str).map(str::to_string),
            file,
            root_key: root.key.clone(),
            version,
            axes,
            levels,
            sources,
        })
    }

    /// The store, as given to [`open`](Self::open).
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The OME-NGFF version (`"0.4"`, `"0.5"`, ...).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The multiscale's `name`, when stored.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The axes, in array order.
    pub fn axes(&self) -> &[OmeAxis] {
        &self.axes
    }

    /// The levels, finest (0) first.
    pub fn levels(&self) -> &[OmeLevel] {
        &self.levels
    }

    /// The lazy data of `level` (nothing read yet). Errors when the level does not exist.
    pub fn lazy(&self, level: usize) -> Result<DynLazyArray> {
        let source = self
            .sources
            .get(level)
            .ok_or_else(|| SignalError::Invalid {
                file: self.file.clone(),
                key: self.root_key.clone(),
                msg: format!(
                    "multiscales[0].datasets: level {level} is out of range: the image has {} \
                 level(s), 0 to {}",
                    self.levels.len(),
                    self.levels.len() - 1
                ),
            })?;
        Ok(DynLazyArray::from_source(source.clone()))
    }

    /// `level` as a [`Signal`]: lazy data, one uniform axis per array axis (name, scale and
    /// offset of this level, units in HyperSpy's short form, `navigate = false` for the
    /// last two space axes, or the last two axes when fewer than two are space axes), the
    /// multiscale's name as title, and `original_metadata.OME` (version, name, level, path,
    /// number of levels, the level's scale and translation, the OME axes).
    pub fn signal(&self, level: usize) -> Result<Signal> {
        let data = self.lazy(level)?;
        let lv = &self.levels[level];
        let n = self.axes.len();
        let space: Vec<usize> = (0..n)
            .filter(|&i| self.axes[i].kind == OmeAxisType::Space)
            .collect();
        let signal_axes: Vec<usize> = if space.len() >= 2 {
            space[space.len() - 2..].to_vec()
        } else {
            (n.saturating_sub(2)..n).collect()
        };
        let axes = self
            .axes
            .iter()
            .enumerate()
            .map(|(i, a)| {
                Axis::uniform(
                    Some(&a.name),
                    a.unit.as_deref().map(hyperspy_unit).as_deref(),
                    lv.shape[i],
                    lv.scale[i],
                    lv.translation[i],
                    !signal_axes.contains(&i),
                )
            })
            .collect();
        let mut signal = Signal::with_axes(data, axes, self.name.as_deref().unwrap_or(""), "");
        if let Some(name) = Path::new(&self.file).file_name() {
            signal.tree.metadata.set_path(
                "General/original_filename",
                name.to_string_lossy().to_string(),
            );
        }
        signal.tree.original_metadata = Dict::new().with("OME", self.ome_dict(level));
        Ok(signal)
    }

    /// `original_metadata.OME` of a level.
    fn ome_dict(&self, level: usize) -> Dict {
        let lv = &self.levels[level];
        let floats = |v: &[f64]| Value::List(v.iter().map(|&x| Value::Float(x)).collect());
        let mut axes = Dict::new();
        for a in &self.axes {
            let mut d = Dict::new();
            if let Some(t) = a.kind.as_str() {
                d.insert("type", t);
            }
            if let Some(u) = &a.unit {
                d.insert("unit", u.as_str());
            }
            axes.insert(a.name.clone(), d);
        }
        let mut ome = Dict::new().with("version", self.version.as_str());
        if let Some(name) = &self.name {
            ome.insert("name", name.as_str());
        }
        ome.with("level", level as i64)
            .with("path", lv.path.as_str())
            .with("levels", self.levels.len() as i64)
            .with("scale", floats(&lv.scale))
            .with("translation", floats(&lv.translation))
            .with("axes", axes)
    }
}

/// Opens one level's array (Zarr v2 or v3) of the store.
fn open_level(store: &ZarrStore, path: &str) -> Result<ZspyArraySource> {
    if !store.contains(&format!("{path}/.zarray")) && !store.contains(&format!("{path}/zarr.json"))
    {
        return Err(SignalError::Missing {
            file: store.file().to_string(),
            key: format!("/{path}"),
            what: "OME-Zarr level array ('.zarray' or 'zarr.json')".into(),
        });
    }
    ZspyArraySource::open_in(store, path)
}

/// Level `level` of the OME-Zarr image at `path` as a lazy [`Signal`]
/// ([`OmeImage::open`] then [`OmeImage::signal`]).
///
/// ```no_run
/// let s = lazyspy::signal::ome_zarr::read::open_ome_zarr("scan.ome.zarr", 0)?;
/// println!("{:?} {}", s.data.shape(), s.tree.title().unwrap_or(""));
/// # Ok::<(), lazyspy::signal::SignalError>(())
/// ```
pub fn open_ome_zarr(path: impl AsRef<Path>, level: usize) -> Result<Signal> {
    OmeImage::open(path)?.signal(level)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Ctx<'static> {
        Ctx {
            file: "f",
            key: "/.zattrs",
        }
    }

    #[test]
    fn transforms_parse_scale_then_translation() {
        let v: J = serde_json::json!([
            {"type": "scale", "scale": [2.0, 0.5]},
            {"type": "translation", "translation": [1, -3.5]}
        ]);
        let t = transform(&ctx(), "t", &v, 2, true).unwrap();
        assert_eq!(t.scale, vec![2.0, 0.5]);
        assert_eq!(t.translation, vec![1.0, -3.5]);
    }

    #[test]
    fn transforms_refuse_bad_lists() {
        let bad = [
            serde_json::json!([{"type": "translation", "translation": [1, 2]}]),
            serde_json::json!([{"type": "scale", "scale": [1]}]),
            serde_json::json!([{"type": "scale", "scale": [1, "a"]}]),
            serde_json::json!([{"type": "scale", "scale": [1, 1]}, {"type": "scale", "scale": [1, 1]}]),
            serde_json::json!([{"type": "scale", "path": "s.bin"}]),
            serde_json::json!([{"type": "rotation", "rotation": [1, 1]}]),
            serde_json::json!({"type": "scale"}),
            serde_json::json!([]),
        ];
        for v in bad {
            assert!(transform(&ctx(), "t", &v, 2, true).is_err(), "{v}");
        }
        // The multiscale-level list may omit the scale.
        let v = serde_json::json!([]);
        assert!(transform(&ctx(), "t", &v, 2, false).is_ok());
    }

    #[test]
    fn axes_of_old_versions_are_implied() {
        let m = serde_json::json!({"datasets": []});
        let axes = parse_axes(&ctx(), "0.2", &m).unwrap();
        assert_eq!(
            axes.iter().map(|a| a.name.as_str()).collect::<String>(),
            "tczyx"
        );
        assert_eq!(axes[4].kind, OmeAxisType::Space);
        assert_eq!(axes[1].kind, OmeAxisType::Channel);
        assert!(parse_axes(&ctx(), "0.4", &m).is_err());
        let m = serde_json::json!({"axes": ["c", "y", "x"]});
        let axes = parse_axes(&ctx(), "0.3", &m).unwrap();
        assert_eq!(axes[0].kind, OmeAxisType::Channel);
        // A type outside space/time/channel is a custom axis.
        let m = serde_json::json!({"axes": [{"name": "a", "type": "angle"}, {"name": "x"}]});
        let axes = parse_axes(&ctx(), "0.4", &m).unwrap();
        assert_eq!(axes[0].kind, OmeAxisType::Custom);
        assert_eq!(axes[1].kind, OmeAxisType::Custom);
    }
}
