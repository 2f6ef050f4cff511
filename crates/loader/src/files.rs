//! A matrix as files: an Arrow record batch, written as CSV or Parquet (cargo feature `export`).

use std::{collections::HashMap, io::Write, sync::Arc};

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use parquet::{arrow::ArrowWriter, basic::Compression, file::properties::WriterProperties};

use crate::{Error, Matrix, Result, matrix::is_missing};

impl Matrix {
    /// The matrix as an Arrow record batch: a non-null `timestamp_ms` (Int64) column, then one
    /// nullable Float64 column per series, named by its labels in PromQL form
    /// (`up{instance="localhost:9090", job="prometheus"}`), with the labels also as JSON in the
    /// field's `labels` metadata. Missing cells are nulls; a NaN the server sent stays NaN.
    pub fn to_record_batch(&self) -> Result<RecordBatch> {
        let mut fields = vec![Field::new("timestamp_ms", DataType::Int64, false)];
        let mut columns: Vec<ArrayRef> =
            vec![Arc::new(Int64Array::from(self.timestamps().to_vec()))];
        let mut names = HashMap::new();
        for (s, labels) in self.series().iter().enumerate() {
            let mut name = labels.to_string();
            // Label sets are unique, so their texts are too; guard anyway.
            let n = names.entry(name.clone()).or_insert(0);
            *n += 1;
            if *n > 1 {
                name = format!("{name}#{n}");
            }
            let json =
                serde_json::to_string(&labels.iter().collect::<std::collections::BTreeMap<_, _>>())
                    .expect("string maps serialise");
            fields.push(
                Field::new(name, DataType::Float64, true)
                    .with_metadata(HashMap::from([("labels".to_owned(), json)])),
            );
            let column: Float64Array = self
                .column(s)
                .iter()
                .map(|&v| (!is_missing(v)).then_some(v))
                .collect();
            columns.push(Arc::new(column));
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| Error::Export {
            what: "an Arrow record batch",
            source: Box::new(e),
        })
    }

    /// Writes CSV with a header row: `timestamp_ms`, then one column per series (see
    /// [`Matrix::to_record_batch`]); missing cells are empty.
    ///
    /// ```
    /// use promlearn_loader::{Labels, Matrix};
    /// let m = Matrix::from_columns(
    ///     vec![1000, 2000],
    ///     vec![Labels::from_pairs([("__name__", "up"), ("job", "a")])],
    ///     vec![vec![Some(1.0), None]],
    /// );
    /// let mut csv = Vec::new();
    /// m.write_csv(&mut csv)?;
    /// assert_eq!(String::from_utf8(csv).unwrap(), "timestamp_ms,\"up{job=\"\"a\"\"}\"\n1000,1.0\n2000,\n");
    /// # Ok::<(), promlearn_loader::Error>(())
    /// ```
    pub fn write_csv(&self, out: impl Write) -> Result<()> {
        let batch = self.to_record_batch()?;
        let mut writer = arrow_csv::WriterBuilder::new().with_header(true).build(out);
        writer.write(&batch).map_err(|e| Error::Export {
            what: "CSV",
            source: Box::new(e),
        })
    }

    /// Writes a Parquet file (Snappy-compressed) of [`Matrix::to_record_batch`].
    pub fn write_parquet(&self, out: impl Write + Send) -> Result<()> {
        let batch = self.to_record_batch()?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let parquet = |e: parquet::errors::ParquetError| Error::Export {
            what: "Parquet",
            source: Box::new(e),
        };
        let mut writer = ArrowWriter::try_new(out, batch.schema(), Some(props)).map_err(parquet)?;
        writer.write(&batch).map_err(parquet)?;
        writer.close().map_err(parquet)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::Array;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use crate::Labels;

    use super::*;

    fn sample() -> Matrix {
        Matrix::from_columns(
            vec![1000, 2000, 3000],
            vec![
                Labels::from_pairs([("__name__", "a"), ("job", "x")]),
                Labels::from_pairs([("__name__", "b")]),
            ],
            vec![
                vec![Some(1.5), None, Some(f64::NAN)],
                vec![Some(f64::INFINITY), Some(-2.0), Some(1e-7)],
            ],
        )
    }

    #[test]
    fn parquet_round_trips_nulls_and_nans() {
        let mut file = Vec::new();
        sample().write_parquet(&mut file).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(file))
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        let batch = &batches[0];
        assert_eq!(batch.num_rows(), 3);
        assert_eq!(batch.schema().field(1).name(), "a{job=\"x\"}");
        assert_eq!(
            batch.schema().field(1).metadata()["labels"],
            r#"{"__name__":"a","job":"x"}"#
        );
        let a = batch
            .column(1)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        assert_eq!(a.value(0), 1.5);
        assert!(a.is_null(1));
        assert!(a.value(2).is_nan());
        let b = batch
            .column(2)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        assert_eq!(b.value(0), f64::INFINITY);
        assert_eq!(b.value(2), 1e-7);
    }

    #[test]
    fn csv_keeps_missing_apart_from_nan() {
        let mut csv = Vec::new();
        sample().write_csv(&mut csv).unwrap();
        let text = String::from_utf8(csv).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "timestamp_ms,\"a{job=\"\"x\"\"}\",b");
        assert_eq!(lines[2], "2000,,-2.0");
        assert!(lines[3].starts_with("3000,NaN,"), "{}", lines[3]);
    }
}
