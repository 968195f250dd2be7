// Safetensors reader and writer (the Hugging Face checkpoint format).
// File layout: u64 little-endian N, then N bytes of JSON header
//   {"__metadata__": {str: str}, NAME: {"dtype": "BF16", "shape": [d0, ...], "data_offsets": [begin, end]}, ...}
// then the raw little-endian tensor data; offsets are relative to the first byte after the header.
// The reader memory-maps files read-only and validates every header field against the file before any
// tensor data is touched, so a malformed or truncated file is an error naming the file and tensor, never
// an out-of-bounds read.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <cJSON.h>

#define ST_MAX_DIMS 8

// Every dtype the format defines. Only F32, BF16 and F16 can be read as float; the others are recognised
// so that the error says what was found.
typedef enum {
    ST_F32, ST_BF16, ST_F16, ST_F64, ST_I64, ST_I32, ST_I16, ST_I8, ST_U64, ST_U32, ST_U16, ST_U8, ST_BOOL,
    ST_F8_E4M3, ST_F8_E5M2, ST_NUM_DTYPES
} StDtype;

typedef struct {
    char *name;
    StDtype dtype;
    int ndim;                        // 0 for a scalar
    int64_t shape[ST_MAX_DIMS];      // [ndim]
    const void *data;                // inside the read-only mapping of files[file]; may be unaligned
    size_t nbytes;                   // = prod(shape) * st_dtype_size(dtype)
    int file;                        // index into SafeTensors.files
} StTensor;

typedef struct {
    char *path;
    void *map;                       // read-only mmap of the whole file (NULL for an empty file)
    size_t size;
} StFile;

typedef struct {
    char path[4096];                 // the file read (a .safetensors or the index .json), for messages
    StFile *files;                   // [nfiles] one per shard
    int nfiles;
    StTensor *tensors;               // [ntensors] in file order (shards in index order, then header order)
    int ntensors;
    int *by_name;                    // [ntensors] indices into tensors sorted by name, for st_find
    cJSON *metadata;                 // __metadata__ of the first file (an object; empty when absent)
} SafeTensors;

// path: a .safetensors file, a model.safetensors.index.json (shards listed in its weight_map, found in the
// same directory), or a directory (its model.safetensors.index.json if present, else model.safetensors).
// Returns 0, or -1 with *st left closed (st_close on it is harmless).
int st_open(SafeTensors *st, const char *path);
void st_close(SafeTensors *st);
// The tensor called `name`, or NULL (no error recorded: absence is often expected).
const StTensor *st_find(const SafeTensors *st, const char *name);
// A string value of __metadata__, or NULL.
const char *st_metadata(const SafeTensors *st, const char *key);

// Reads tensor `name` into out[prod(shape)] as fp32 (exact for F32, BF16 and F16), after checking that it
// exists and that its shape is exactly shape[ndim]. Errors: "tensor 'X' not found in FILE",
// "tensor 'X' in FILE: expected shape [8, 64], found [8, 32]", "... dtype I64 cannot be read as float".
int st_read_f32(const SafeTensors *st, const char *name, float *out, int ndim, const int64_t *shape);
// Converts a tensor found by st_find into out[prod(t->shape)] as fp32, without a shape check.
int st_tensor_to_f32(const SafeTensors *st, const StTensor *t, float *out);

typedef struct {
    const char *name;
    const float *data;               // [prod(shape)] fp32; may be NULL when prod(shape) == 0
    int ndim;
    int64_t shape[ST_MAX_DIMS];      // [ndim]
} StWriteTensor;

// Writes tensors[n] in the given order as dtype (ST_F32, or ST_BF16 rounded to nearest even with NaN kept
// NaN), atomically (common/fileio.h). The header is compact JSON padded with spaces so the data starts at a
// multiple of 8 bytes; __metadata__ is {"format": "pt"} plus the string values of `metadata` (an object, or
// NULL), as Hugging Face transformers expects.
int st_write(const char *path, const StWriteTensor *tensors, int n, StDtype dtype, const cJSON *metadata);

const char *st_dtype_name(StDtype dtype);
size_t st_dtype_size(StDtype dtype);
// Scalar conversions, exact (to fp32) or rounded to nearest even (to bf16); exposed for tests and kernels.
float st_bf16_to_f32(uint16_t h);
float st_f16_to_f32(uint16_t h);
uint16_t st_f32_to_bf16(float f);
