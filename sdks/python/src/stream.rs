//! `Plugin.call_stream`: `std::io::Read` and `Write` over Python objects, for
//! `plinth::Plugin::call_stream`. The call runs without the GIL; each read and write takes it
//! for as long as the Python method runs. A Python exception is kept (the runtime sees an
//! `io::Error` with its text) and becomes the `__cause__` of the call's StreamError.

use std::io::{self, Read, Write};

use pyo3::exceptions::{PyException, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyInt, PyIterator, PyMemoryView, PyString};

use super::type_name;

enum Source {
    /// A file-like object's bound `read1` or `read`, called with the size the plug-in asks for.
    Reader(Py<PyAny>),
    /// An iterator of bytes chunks.
    Chunks(Py<PyIterator>),
}

/// The call's input: a file-like object (`read(n)`) or an iterable of bytes chunks.
pub(crate) struct PyReader {
    source: Source,
    /// The part of the last chunk not handed to the plug-in yet (a chunk may be larger than
    /// the plug-in's buffer).
    pending: Vec<u8>,
    pos: usize,
    done: bool,
    error: Option<PyErr>,
}

impl PyReader {
    pub(crate) fn new(input: &Bound<'_, PyAny>) -> PyResult<Self> {
        // read1 returns what one read of the underlying file gives (a pipe's bytes so far),
        // where a buffered read(n) waits for n bytes.
        let read = input.getattr("read1").or_else(|_| input.getattr("read"));
        let source = if let Ok(read) = read {
            Source::Reader(read.unbind())
        } else if let Ok(iter) = input.try_iter() {
            Source::Chunks(iter.unbind())
        } else {
            return Err(PyTypeError::new_err(format!(
                "a stream's input is a binary file-like object (with read(n)) or an iterable of bytes chunks, not {}",
                input.get_type().name()?
            )));
        };
        Ok(PyReader {
            source,
            pending: Vec::new(),
            pos: 0,
            done: false,
            error: None,
        })
    }

    /// The next chunk from Python: `None` at the end.
    fn next_chunk(&self, py: Python<'_>, want: usize) -> PyResult<Option<Vec<u8>>> {
        match &self.source {
            Source::Reader(read) => {
                let got = read.bind(py).call1((want,))?;
                if got.is_none() {
                    return Err(PyTypeError::new_err(
                        "the input's read() returned None (a non-blocking stream with no data): give a blocking binary stream",
                    ));
                }
                let bytes = chunk_bytes(&got, "the input's read()")?;
                // Zero bytes from read() is the end of a file.
                Ok((!bytes.is_empty()).then_some(bytes))
            }
            Source::Chunks(iter) => loop {
                let Some(item) = iter.bind(py).clone().next() else {
                    return Ok(None);
                };
                let bytes = chunk_bytes(&item?, "the input iterable")?;
                // An empty chunk is not the end of an iterator.
                if !bytes.is_empty() {
                    return Ok(Some(bytes));
                }
            },
        }
    }

    /// The Python exception that failed a read, if one did.
    pub(crate) fn take_error(&mut self) -> Option<PyErr> {
        self.error.take()
    }
}

impl Read for PyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.pos >= self.pending.len() {
            if let Some(err) = &self.error {
                return Err(io::Error::other(Python::attach(|py| describe(py, err))));
            }
            if self.done {
                return Ok(0);
            }
            match Python::attach(|py| self.next_chunk(py, buf.len())) {
                Ok(None) => {
                    self.done = true;
                    return Ok(0);
                }
                Ok(Some(chunk)) => {
                    self.pending = chunk;
                    self.pos = 0;
                }
                Err(err) => {
                    let text = Python::attach(|py| describe(py, &err));
                    self.error = Some(err);
                    return Err(io::Error::other(text));
                }
            }
        }
        let n = buf.len().min(self.pending.len() - self.pos);
        buf[..n].copy_from_slice(&self.pending[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

enum Sink {
    /// A file-like object's bound `write`, and `flush` when it has one.
    Writer {
        write: Py<PyAny>,
        flush: Option<Py<PyAny>>,
    },
    /// A callable given each chunk (`chunks.append`); its result is ignored.
    Callback(Py<PyAny>),
}

/// The call's output: a file-like object (`write(b)`, `flush()`) or a callable.
pub(crate) struct PyWriter {
    sink: Sink,
    error: Option<PyErr>,
}

impl PyWriter {
    pub(crate) fn new(output: &Bound<'_, PyAny>) -> PyResult<Self> {
        let sink = if let Ok(write) = output.getattr("write") {
            Sink::Writer {
                write: write.unbind(),
                flush: output.getattr("flush").ok().map(Bound::unbind),
            }
        } else if output.is_callable() {
            Sink::Callback(output.clone().unbind())
        } else {
            return Err(PyTypeError::new_err(format!(
                "a stream's output is a binary file-like object (with write(b)) or a callable taking bytes, not {}",
                output.get_type().name()?
            )));
        };
        Ok(PyWriter { sink, error: None })
    }

    pub(crate) fn take_error(&mut self) -> Option<PyErr> {
        self.error.take()
    }

    fn fail(&mut self, err: PyErr, prefix: &str) -> io::Error {
        let text = Python::attach(|py| describe(py, &err));
        self.error = Some(err);
        io::Error::other(format!("{prefix}{text}"))
    }

    fn closed(&self) -> Option<io::Error> {
        let err = self.error.as_ref()?;
        Some(io::Error::other(Python::attach(|py| describe(py, err))))
    }
}

impl Write for PyWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(err) = self.closed() {
            return Err(err);
        }
        let result = Python::attach(|py| -> PyResult<usize> {
            let chunk = PyBytes::new(py, buf);
            match &self.sink {
                Sink::Callback(f) => {
                    f.bind(py).call1((chunk,))?;
                    Ok(buf.len())
                }
                Sink::Writer { write, .. } => {
                    let ret = write.bind(py).call1((chunk,))?;
                    // A raw file or socket may take part of the chunk; write_all sends the
                    // rest. Buffered files return the length or None.
                    if ret.is_instance_of::<PyInt>() {
                        let n: i64 = ret.extract()?;
                        return usize::try_from(n)
                            .ok()
                            .filter(|n| *n <= buf.len())
                            .ok_or_else(|| {
                                PyTypeError::new_err(format!(
                                    "the output's write() returned {n} for a chunk of {} bytes",
                                    buf.len()
                                ))
                            });
                    }
                    Ok(buf.len())
                }
            }
        });
        result.map_err(|err| self.fail(err, ""))
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(err) = self.closed() {
            return Err(err);
        }
        let Sink::Writer {
            flush: Some(flush), ..
        } = &self.sink
        else {
            return Ok(());
        };
        let result = Python::attach(|py| flush.bind(py).call0().map(drop));
        result.map_err(|err| self.fail(err, "flush() raised "))
    }
}

/// The bytes of a chunk: `bytes`, `bytearray` or `memoryview`.
fn chunk_bytes(chunk: &Bound<'_, PyAny>, from: &str) -> PyResult<Vec<u8>> {
    if let Ok(b) = chunk.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    if let Ok(b) = chunk.cast::<PyByteArray>() {
        return Ok(b.to_vec());
    }
    if chunk.is_instance_of::<PyMemoryView>() {
        let b = chunk.py().get_type::<PyBytes>().call1((chunk,))?;
        return Ok(b.cast::<PyBytes>()?.as_bytes().to_vec());
    }
    let hint = if chunk.is_instance_of::<PyString>() {
        " (open files in binary mode, 'rb', or encode text chunks)"
    } else {
        ""
    };
    Err(PyTypeError::new_err(format!(
        "{from} gave {}, not bytes{hint}",
        chunk.get_type().name()?
    )))
}

fn describe(py: Python<'_>, err: &PyErr) -> String {
    format!("{}: {}", type_name(py, err), err.value(py))
}

/// The exception for a failed stream call: a KeyboardInterrupt or SystemExit that a read or
/// write raised is raised as it is; another exception they raised becomes the `__cause__`.
pub(crate) fn with_cause(py: Python<'_>, err: PyErr, cause: Option<PyErr>) -> PyErr {
    let Some(cause) = cause else {
        return err;
    };
    if !cause.is_instance_of::<PyException>(py) {
        return cause;
    }
    err.set_cause(py, Some(cause));
    err
}
