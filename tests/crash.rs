//! Crash safety of the `.zspy` writer and of the OME-Zarr pyramid writer, with real
//! processes: a writer killed with SIGKILL at random moments never leaves a chunk file that
//! fails to decode (nor, for a pyramid, a root group document), a resume completes the
//! store to the same bytes as an uninterrupted write, and a reader polling the store during
//! a write never sees a torn chunk.
//!
//! The writer runs in a child process: this test binary re-invoked with `LAZYSPY_CRASH_CHILD`
//! set (see `crash_child_process`). Set `LAZYSPY_TEST_SEED` to replay a run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lazyspy::io::atomic::INCOMPLETE_MARKER;
use lazyspy::signal::ome_zarr::{PyramidOptions, write_ome_zarr};
use lazyspy::signal::{Signal, ZarrStore, ZspyArraySource, ZspyWriteOptions, write_zspy};
use lazyspy::{ChunkSource, ExecConfig, LazyArray};
use ndarray::ArrayD;

const CHILD_ENV: &str = "LAZYSPY_CRASH_CHILD";
const PATH_ENV: &str = "LAZYSPY_CRASH_PATH";
const SHAPE: [usize; 3] = [48, 64, 64];
const CHUNKS: [usize; 3] = [1, 64, 64];
const DATA_KEY: &str = "Experiments/crash/data";

/// The job: a deterministic float32 stack written with default settings.
fn signal() -> Signal {
    let data = LazyArray::from_fn(&SHAPE, &CHUNKS, |r| {
        let shape = r.shape();
        let mut a = ArrayD::<f32>::zeros(shape.clone());
        for (i, v) in a.iter_mut().enumerate() {
            let z = r.start[0] + i / (shape[1] * shape[2]);
            *v = ((i as f32) * 0.37 + z as f32 * 11.0).sin() * 100.0 + z as f32;
        }
        Ok(a)
    })
    .unwrap();
    Signal::from_lazy(data.into_dyn(), 2, "crash")
}

/// The two jobs under test: a `.zspy` store, and a 3-level OME-Zarr 0.4 pyramid of 16² chunks.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Job {
    Zspy,
    Pyramid,
}

fn write(job: Job, path: &Path, resume: bool) {
    let exec = ExecConfig::default().with_threads(2);
    let outcome = match job {
        Job::Zspy => {
            let opts = ZspyWriteOptions {
                resume,
                ..ZspyWriteOptions::default()
            };
            write_zspy(path, &signal(), &opts, &exec).map(|_| ())
        }
        Job::Pyramid => {
            let opts = PyramidOptions {
                resume,
                levels: Some(3),
                chunk: 16,
                ..PyramidOptions::default()
            };
            write_ome_zarr(path, &signal(), &opts, &exec).map(|_| ())
        }
    };
    outcome.unwrap_or_else(|e| panic!("{e}"))
}

/// The arrays of a job's store and their chunk-grid shapes.
fn arrays(job: Job) -> Vec<(String, [usize; 3])> {
    match job {
        Job::Zspy => vec![(DATA_KEY.to_string(), [SHAPE[0], 1, 1])],
        Job::Pyramid => (0..3)
            .map(|k| (k.to_string(), [SHAPE[0], 4 >> k, 4 >> k]))
            .collect(),
    }
}

/// Not a test of its own: the body of the child process.
#[test]
fn crash_child_process() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    let path = PathBuf::from(std::env::var(PATH_ENV).unwrap());
    let job = if mode.ends_with("pyramid") {
        Job::Pyramid
    } else {
        Job::Zspy
    };
    write(job, &path, mode.starts_with("resume"));
}

fn spawn(path: &Path, mode: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, mode)
        .env(PATH_ENV, path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("LAZYSPY_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("crash: LAZYSPY_TEST_SEED={seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n.max(1)
    }
}

fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                let key = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(key, bytes);
            }
        }
    }
    out
}

/// Decodes every chunk file present; returns how many there were.
fn decode_present_chunks(job: Job, path: &Path) -> Result<usize, String> {
    let mut n = 0;
    for (array, grid) in arrays(job) {
        if !path.join(&array).join(".zarray").exists() {
            continue;
        }
        // Raw access: the store is unfinished (marked incomplete) while it is being written.
        let store = ZarrStore::open(path).map_err(|e| e.to_string())?;
        let source = ZspyArraySource::open_in(&store, &array).map_err(|e| e.to_string())?;
        for z in 0..grid[0] {
            for y in 0..grid[1] {
                for x in 0..grid[2] {
                    if path.join(format!("{array}/{z}/{y}/{x}")).exists() {
                        source
                            .read_chunk(&[z, y, x])
                            .map_err(|e| format!("{array} chunk {z}/{y}/{x}: {e}"))?;
                        n += 1;
                    }
                }
            }
        }
    }
    Ok(n)
}

/// All chunks of a job.
fn chunk_count(job: Job) -> usize {
    arrays(job)
        .iter()
        .map(|(_, g)| g.iter().product::<usize>())
        .sum()
}

#[test]
fn a_writer_killed_at_random_moments_resumes_to_identical_bytes() {
    kill_and_resume(Job::Zspy, 8);
}

#[test]
fn a_pyramid_writer_killed_at_random_moments_resumes_to_identical_bytes() {
    kill_and_resume(Job::Pyramid, 5);
}

fn kill_and_resume(job: Job, rounds: usize) {
    let (fresh, resume) = match job {
        Job::Zspy => ("fresh", "resume"),
        Job::Pyramid => ("fresh-pyramid", "resume-pyramid"),
    };
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean.zspy");
    let started = Instant::now();
    write(job, &clean, false);
    let clean_time = started.elapsed();
    let expected = files(&clean);
    let mut rng = Rng::new();
    let mut partial_states = 0;
    for round in 0..rounds {
        let path = dir.path().join(format!("killed{round}.zspy"));
        // Kill the writer once or several times, then let a resume finish the job.
        let kills = 1 + rng.below(3);
        for _ in 0..kills {
            let mode = if path.exists() { resume } else { fresh };
            let mut child = spawn(&path, mode);
            // Process start-up plus up to about one clean write.
            let wait = Duration::from_millis(5 + rng.below(40 + clean_time.as_millis() as u64 * 2));
            std::thread::sleep(wait);
            child.kill().unwrap();
            child.wait().unwrap();
            let n = decode_present_chunks(job, &path).unwrap_or_else(|e| {
                panic!("round {round}: a chunk does not decode after SIGKILL: {e}")
            });
            if n > 0 && n < chunk_count(job) {
                partial_states += 1;
            }
            // The guarantee: a store that Zarr readers take for complete (its root group
            // document is there; for a pyramid also the image's root .zattrs) holds every
            // chunk. The marker itself goes last, so it may outlive the root by a moment.
            let roots: &[&str] = match job {
                Job::Zspy => &[".zgroup"],
                Job::Pyramid => &[".zgroup", ".zattrs"],
            };
            if n > 0 && !path.join(".zgroup").exists() {
                assert!(
                    path.join(INCOMPLETE_MARKER).exists(),
                    "round {round}: chunks without the incomplete marker"
                );
            }
            for root in roots {
                if path.join(root).exists() {
                    assert_eq!(
                        n,
                        chunk_count(job),
                        "round {round}: the root {root} was written before every chunk"
                    );
                }
            }
        }
        if path.exists() {
            let out = Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "crash_child_process",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, resume)
                .env(PATH_ENV, &path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "round {round}: resume failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        } else {
            write(job, &path, false);
        }
        let got = files(&path);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "round {round}"
        );
        assert!(
            got == expected,
            "round {round}: bytes differ from a clean write"
        );
    }
    eprintln!("crash: {job:?}: {partial_states} kills left a partially written store");
}

#[test]
fn a_polling_reader_never_sees_a_torn_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("polled.zspy");
    let mut child = spawn(&path, "fresh");
    let mut decoded_max = 0;
    let mut polls = 0;
    loop {
        let finished = child.try_wait().unwrap().is_some();
        let n = decode_present_chunks(Job::Zspy, &path)
            .unwrap_or_else(|e| panic!("poll {polls}: a reader saw a bad chunk: {e}"));
        decoded_max = decoded_max.max(n);
        polls += 1;
        if finished {
            break;
        }
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(decode_present_chunks(Job::Zspy, &path).unwrap(), SHAPE[0]);
    assert!(polls > 1, "the reader polled during the write");
    eprintln!("crash: {polls} polls, up to {decoded_max} chunks decoded while writing");
}
