/* embed_c: loads a Kiln artifact with the runtime's C API, feeds it .npy
 * inputs and prints its outputs the way `kiln run` does.
 *
 *   embed_c model.so input0.npy [input1.npy ...]
 *
 * Build against an installed Kiln (see Makefile, or):
 *   cc -std=c11 main.c $(pkg-config --cflags --libs kiln) -o embed_c
 */
#include <kiln_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A .npy file's array: little-endian, C order (version 1.0-3.0 headers). */
typedef struct npy_array {
  kiln_dtype dtype;
  int32_t rank;
  int64_t dims[KILN_MAX_RANK];
  void* data;
  size_t bytes;
} npy_array;

static int dtype_from_descr(const char* descr, kiln_dtype* dtype) {
  static const struct {
    const char* descr;
    kiln_dtype dtype;
  } table[] = {{"<f4", KILN_FLOAT32}, {"<f8", KILN_FLOAT64}, {"<f2", KILN_FLOAT16}, {"<i8", KILN_INT64},
               {"<i4", KILN_INT32},   {"<i2", KILN_INT16},   {"|i1", KILN_INT8},    {"|u1", KILN_UINT8},
               {"<u2", KILN_UINT16},  {"<u4", KILN_UINT32},  {"<u8", KILN_UINT64},  {"|b1", KILN_BOOL}};
  for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); ++i)
    if (strcmp(descr, table[i].descr) == 0) {
      *dtype = table[i].dtype;
      return 1;
    }
  return 0;
}

/* Returns 0 on success; prints a one-line reason otherwise. */
static int read_npy(const char* path, npy_array* out) {
  FILE* f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "embed_c: cannot read '%s'\n", path);
    return 1;
  }
  unsigned char prefix[12];
  int ok = fread(prefix, 1, 10, f) == 10 && memcmp(prefix, "\x93NUMPY", 6) == 0;
  size_t header_len = 0;
  if (ok && prefix[6] == 1) {
    header_len = prefix[8] | (prefix[9] << 8);
  } else if (ok && fread(prefix + 10, 1, 2, f) == 2) {
    header_len = prefix[8] | (prefix[9] << 8) | ((size_t)prefix[10] << 16) | ((size_t)prefix[11] << 24);
  } else {
    ok = 0;
  }
  char* header = ok ? calloc(header_len + 1, 1) : NULL;
  ok = header && fread(header, 1, header_len, f) == header_len;
  char descr[16] = {0};
  const char* d = ok ? strstr(header, "'descr':") : NULL;
  const char* s = ok ? strstr(header, "'shape':") : NULL;
  ok = d && s && sscanf(d, "'descr': '%15[^']'", descr) == 1 && dtype_from_descr(descr, &out->dtype) &&
       strstr(header, "'fortran_order': False") != NULL;
  if (ok) {
    out->rank = 0;
    const char* p = strchr(s, '(') + 1;
    while (*p && *p != ')') {
      char* end;
      long long v = strtoll(p, &end, 10);
      if (end == p) {
        ++p;
        continue;
      }
      if (out->rank == KILN_MAX_RANK) {
        ok = 0;
        break;
      }
      out->dims[out->rank++] = v;
      p = end;
    }
  }
  if (ok) {
    size_t elems = 1;
    for (int32_t i = 0; i < out->rank; ++i) elems *= (size_t)out->dims[i];
    out->bytes = elems * kiln_dtype_size(out->dtype);
    out->data = malloc(out->bytes ? out->bytes : 1);
    ok = out->data && fread(out->data, 1, out->bytes, f) == out->bytes;
  }
  free(header);
  fclose(f);
  if (!ok) fprintf(stderr, "embed_c: '%s' is not a little-endian, C-order .npy file of a supported dtype\n", path);
  return ok ? 0 : 1;
}

static void print_tensor(const char* name, const kiln_tensor* t) {
  printf("%s: %s[", name, kiln_dtype_name(t->dtype));
  size_t elems = 1;
  for (int32_t i = 0; i < t->rank; ++i) {
    printf("%s%lld", i ? "x" : "", (long long)t->dims[i]);
    elems *= (size_t)t->dims[i];
  }
  printf("] = [");
  size_t shown = elems < 8 ? elems : 8;
  for (size_t i = 0; i < shown; ++i) {
    if (i) printf(", ");
    switch (t->dtype) {
      case KILN_FLOAT32:
        printf("%g", ((const float*)t->data)[i]);
        break;
      case KILN_FLOAT64:
        printf("%g", ((const double*)t->data)[i]);
        break;
      case KILN_INT64:
        printf("%lld", (long long)((const int64_t*)t->data)[i]);
        break;
      case KILN_INT32:
        printf("%d", ((const int32_t*)t->data)[i]);
        break;
      case KILN_UINT8:
      case KILN_BOOL:
        printf("%u", ((const uint8_t*)t->data)[i]);
        break;
      case KILN_INT8:
        printf("%d", ((const int8_t*)t->data)[i]);
        break;
      default:
        printf("?");
        break;
    }
  }
  printf(elems > shown ? ", ...]\n" : "]\n");
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: embed_c model.so input0.npy [input1.npy ...]\n");
    return 2;
  }
  kiln_error* err = NULL;
  kiln_model* model = NULL;
  if (kiln_model_load(argv[1], &model, &err) != KILN_OK) {
    fprintf(stderr, "embed_c: %s\n", kiln_error_message(err));
    kiln_error_free(err);
    return 1;
  }
  size_t n_in = kiln_model_num_inputs(model), n_out = kiln_model_num_outputs(model);
  if ((size_t)(argc - 2) != n_in) {
    fprintf(stderr, "embed_c: the model takes %zu inputs, %d given\n", n_in, argc - 2);
    kiln_model_free(model);
    return 2;
  }
  int rc = 0;
  kiln_session* session = NULL;
  kiln_tensor* inputs = calloc(n_in, sizeof(kiln_tensor));
  kiln_tensor* outputs = calloc(n_out, sizeof(kiln_tensor)); /* data NULL: the run allocates */
  for (size_t i = 0; i < n_in && rc == 0; ++i) {
    npy_array a;
    if (read_npy(argv[2 + i], &a) != 0) {
      rc = 2;
      break;
    }
    inputs[i].dtype = a.dtype;
    inputs[i].rank = a.rank;
    memcpy(inputs[i].dims, a.dims, sizeof(a.dims));
    inputs[i].data = a.data;
    inputs[i].bytes = a.bytes;
  }
  if (rc == 0 && (kiln_session_create(model, NULL, &session, &err) != KILN_OK ||
                  kiln_session_run(session, inputs, n_in, outputs, n_out, &err) != KILN_OK)) {
    fprintf(stderr, "embed_c: %s\n", kiln_error_message(err));
    kiln_error_free(err);
    rc = 1;
  }
  for (size_t i = 0; i < n_out && rc == 0; ++i) {
    kiln_tensor_info info;
    kiln_model_output(model, i, &info, NULL);
    print_tensor(info.name, &outputs[i]);
  }
  for (size_t i = 0; i < n_out; ++i) kiln_free(outputs[i].data);
  for (size_t i = 0; i < n_in; ++i) free(inputs[i].data);
  free(inputs);
  free(outputs);
  kiln_session_free(session);
  kiln_model_free(model);
  return rc;
}
