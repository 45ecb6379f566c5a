//! The TEXMEX vector file formats (as used by SIFT1M/GIST1M), so any such data set can be
//! benchmarked and our synthetic sets can be fed to other tools.
//!
//! Both formats are a sequence of records, each a little-endian `i32` dimension `d` followed by
//! `d` little-endian values: `f32` for `.fvecs` (vectors), `i32` for `.ivecs` (neighbour ids).
//! Every record of a file has the same dimension. Readers check all of that and report the
//! record and byte offset of the first problem instead of panicking.

use std::io::{self, Read, Write};
use std::path::Path;

/// Largest dimension we accept in a file header (guards against reading garbage as a size).
pub const MAX_DIM: usize = 1 << 16;

/// Why a TEXMEX file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TexmexError {
    /// The underlying reader or writer failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// A record header holds a dimension that is zero, negative or absurdly large.
    #[error("record {record} (byte {offset}): invalid dimension {dim}")]
    BadDimension {
        /// Zero-based record number.
        record: usize,
        /// Byte offset of the record header.
        offset: u64,
        /// The dimension found.
        dim: i64,
    },
    /// A record's dimension differs from the first record's.
    #[error("record {record} (byte {offset}): dimension {found}, but the file started with {expected}")]
    MixedDimension {
        /// Zero-based record number.
        record: usize,
        /// Byte offset of the record header.
        offset: u64,
        /// Dimension of record 0.
        expected: usize,
        /// Dimension of this record.
        found: usize,
    },
    /// The file ends in the middle of a record.
    #[error("record {record} (byte {offset}): file truncated inside the record")]
    Truncated {
        /// Zero-based record number.
        record: usize,
        /// Byte offset of the record header.
        offset: u64,
    },
    /// A vector component is NaN or infinite.
    #[error("record {record}: component {index} is not finite")]
    NonFinite {
        /// Zero-based record number.
        record: usize,
        /// Component index.
        index: usize,
    },
    /// The file holds no records.
    #[error("file holds no records")]
    Empty,
    /// Rows of `dim` values were expected but `values.len()` is not a multiple of it.
    #[error("cannot write {len} values as rows of dimension {dim}")]
    RaggedRows {
        /// Number of values supplied.
        len: usize,
        /// Row dimension requested.
        dim: usize,
    },
}

/// Row-major matrix read from a TEXMEX file: `rows * dim` values.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix<T> {
    /// Values per row.
    pub dim: usize,
    /// `rows() * dim` values, row after row.
    pub values: Vec<T>,
}

impl<T> Matrix<T> {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.values.len().checked_div(self.dim).unwrap_or(0)
    }

    /// Row `i` (panics if out of range, like slice indexing).
    pub fn row(&self, i: usize) -> &[T] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }
}

/// Fills `buf` completely; `Ok(false)` on a clean end of input before the first byte.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<ReadOutcome> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => {
                return Ok(if filled == 0 { ReadOutcome::Eof } else { ReadOutcome::Partial });
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(ReadOutcome::Full)
}

enum ReadOutcome {
    Full,
    Partial,
    Eof,
}

/// Reads all records, decoding each 4-byte value with `decode`.
fn read_records<T>(
    reader: impl Read,
    decode: impl Fn([u8; 4]) -> T,
    check: impl Fn(usize, usize, &T) -> Result<(), TexmexError>,
) -> Result<Matrix<T>, TexmexError> {
    let mut reader = io::BufReader::with_capacity(1 << 20, reader);
    let mut values = Vec::new();
    let mut dim: Option<usize> = None;
    let mut record = 0usize;
    let mut offset = 0u64;
    let mut body = Vec::new();
    loop {
        let mut header = [0u8; 4];
        match read_full(&mut reader, &mut header)? {
            ReadOutcome::Eof => break,
            ReadOutcome::Partial => return Err(TexmexError::Truncated { record, offset }),
            ReadOutcome::Full => {}
        }
        let d = i32::from_le_bytes(header) as i64;
        if d <= 0 || d as usize > MAX_DIM {
            return Err(TexmexError::BadDimension { record, offset, dim: d });
        }
        let d = d as usize;
        match dim {
            None => dim = Some(d),
            Some(expected) if expected != d => {
                return Err(TexmexError::MixedDimension { record, offset, expected, found: d });
            }
            Some(_) => {}
        }
        body.resize(d * 4, 0);
        match read_full(&mut reader, &mut body)? {
            ReadOutcome::Full => {}
            _ => return Err(TexmexError::Truncated { record, offset }),
        }
        for (index, chunk) in body.chunks_exact(4).enumerate() {
            let v = decode([chunk[0], chunk[1], chunk[2], chunk[3]]);
            check(record, index, &v)?;
            values.push(v);
        }
        record += 1;
        offset += 4 + 4 * d as u64;
    }
    match dim {
        Some(dim) => Ok(Matrix { dim, values }),
        None => Err(TexmexError::Empty),
    }
}

/// Reads an `.fvecs` stream (vectors; rejects non-finite components).
pub fn read_fvecs(reader: impl Read) -> Result<Matrix<f32>, TexmexError> {
    read_records(reader, f32::from_le_bytes, |record, index, v: &f32| {
        if v.is_finite() { Ok(()) } else { Err(TexmexError::NonFinite { record, index }) }
    })
}

/// Reads an `.ivecs` stream (neighbour ids; values are returned as stored).
pub fn read_ivecs(reader: impl Read) -> Result<Matrix<i32>, TexmexError> {
    read_records(reader, i32::from_le_bytes, |_, _, _| Ok(()))
}

fn write_records<T: Copy>(
    writer: impl Write,
    dim: usize,
    values: &[T],
    encode: impl Fn(T) -> [u8; 4],
) -> Result<(), TexmexError> {
    if dim == 0 || dim > MAX_DIM || !values.len().is_multiple_of(dim) {
        return Err(TexmexError::RaggedRows { len: values.len(), dim });
    }
    let mut writer = io::BufWriter::with_capacity(1 << 20, writer);
    for row in values.chunks_exact(dim) {
        writer.write_all(&(dim as i32).to_le_bytes())?;
        for &v in row {
            writer.write_all(&encode(v))?;
        }
    }
    writer.flush()?;
    Ok(())
}

/// Writes rows of `dim` floats as `.fvecs`.
pub fn write_fvecs(writer: impl Write, dim: usize, values: &[f32]) -> Result<(), TexmexError> {
    write_records(writer, dim, values, f32::to_le_bytes)
}

/// Writes rows of `dim` ids as `.ivecs`.
pub fn write_ivecs(writer: impl Write, dim: usize, values: &[i32]) -> Result<(), TexmexError> {
    write_records(writer, dim, values, i32::to_le_bytes)
}

/// Reads an `.fvecs` file, naming the file in the error.
pub fn read_fvecs_file(path: &Path) -> anyhow::Result<Matrix<f32>> {
    use anyhow::Context;
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    read_fvecs(file).with_context(|| format!("reading {} as .fvecs", path.display()))
}

/// Reads an `.ivecs` file, naming the file in the error.
pub fn read_ivecs_file(path: &Path) -> anyhow::Result<Matrix<i32>> {
    use anyhow::Context;
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    read_ivecs(file).with_context(|| format!("reading {} as .ivecs", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fvecs_round_trip() {
        let values: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 2.0).collect();
        let mut bytes = Vec::new();
        write_fvecs(&mut bytes, 3, &values).unwrap();
        assert_eq!(bytes.len(), 4 * (4 + 4 * 3));
        assert_eq!(&bytes[..4], &3i32.to_le_bytes());
        let m = read_fvecs(&bytes[..]).unwrap();
        assert_eq!(m.dim, 3);
        assert_eq!(m.rows(), 4);
        assert_eq!(m.row(1), &values[3..6]);
        assert_eq!(m.values, values);
    }

    #[test]
    fn ivecs_round_trip() {
        let values = vec![5, -1, 7, 0, 1, 2];
        let mut bytes = Vec::new();
        write_ivecs(&mut bytes, 2, &values).unwrap();
        let m = read_ivecs(&bytes[..]).unwrap();
        assert_eq!((m.dim, m.values), (2, values));
    }

    #[test]
    fn malformed_files_give_clear_errors() {
        let mut good = Vec::new();
        write_fvecs(&mut good, 2, &[1.0, 2.0, 3.0, 4.0]).unwrap();

        assert!(matches!(read_fvecs(&[][..]), Err(TexmexError::Empty)));
        let cut = &good[..good.len() - 1];
        assert!(matches!(read_fvecs(cut), Err(TexmexError::Truncated { record: 1, offset: 12 })));
        let half_header = &good[..14];
        assert!(matches!(read_fvecs(half_header), Err(TexmexError::Truncated { record: 1, .. })));

        let mut zero_dim = good.clone();
        zero_dim[..4].copy_from_slice(&0i32.to_le_bytes());
        assert!(matches!(read_fvecs(&zero_dim[..]), Err(TexmexError::BadDimension { dim: 0, .. })));
        let mut negative = good.clone();
        negative[..4].copy_from_slice(&(-3i32).to_le_bytes());
        assert!(matches!(read_fvecs(&negative[..]), Err(TexmexError::BadDimension { dim: -3, .. })));

        let mut mixed = good.clone();
        write_fvecs(&mut mixed, 3, &[1.0, 2.0, 3.0]).unwrap();
        let err = read_fvecs(&mixed[..]).unwrap_err();
        assert!(matches!(err, TexmexError::MixedDimension { record: 2, expected: 2, found: 3, .. }));
        assert!(err.to_string().contains("dimension 3"));

        let mut nan = good.clone();
        nan[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(matches!(read_fvecs(&nan[..]), Err(TexmexError::NonFinite { record: 0, index: 1 })));

        assert!(matches!(
            write_fvecs(Vec::new(), 3, &[1.0; 4]),
            Err(TexmexError::RaggedRows { len: 4, dim: 3 })
        ));
    }

    #[test]
    fn files_round_trip_with_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.fvecs");
        write_fvecs(std::fs::File::create(&path).unwrap(), 2, &[1.0, 2.0]).unwrap();
        assert_eq!(read_fvecs_file(&path).unwrap().values, vec![1.0, 2.0]);
        let missing = dir.path().join("missing.ivecs");
        let err = read_ivecs_file(&missing).unwrap_err();
        assert!(format!("{err:#}").contains("missing.ivecs"));
    }
}
