/* db._bm25: FTS5's bm25 with the number of articles holding each phrase given by the caller,
 * who keeps those counts between searches (db/fts_rank.py). FTS5's own bm25() counts them by
 * walking each phrase's whole posting list at the start of every query: for a common word
 * among a million articles, most of the cost of ranking a few thousand candidates.
 *
 * The module links the same libsqlite3 as Python's sqlite3 module and opens its own read-only
 * connections through it: the function must be registered through the C API, which Python's
 * module does not offer, and a second copy of SQLite in the process must never open the same
 * file (its POSIX locks would be dropped by the other copy's close). same_sqlite() checks,
 * through the dynamic linker, that the copy is the one Python's module uses.
 *
 *   cached_bm25(article_fts, counts, weight, ...)
 *
 * counts: a blob of one native double per phrase of the query, in order: the articles holding
 * it, or a negative number for a phrase that weighs nothing (a concept filter); weights: one
 * per column, as bm25() takes them (columns beyond them weigh 1). Lower is better, as bm25().
 *
 * Each article's length (its tokens in every column) is what FTS5 keeps in its docsize table,
 * a lookup per row ranked: two thirds of the function's time for a few thousand candidates
 * spread over a million articles. A connection can hold them all in memory (load_lengths());
 * an article it does not know, or was told to forget (forget_lengths()), is looked up.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#define K1 1.2 /* bm25's constants in FTS5 (fts5_aux.c) */
#define B 0.75

typedef struct {
    sqlite3_int64 *ids; /* ascending */
    int *lengths;       /* -1: look it up */
    Py_ssize_t count;
} Lengths;

/* Where ID is among the known ids, or -1. Ids ascend without repeats, so ID is at most
 * id - ids[0] places in, and exactly there where none before it is missing (the usual case):
 * one read, not a binary search over a million ids most of which are out of cache. Where some
 * are missing (deleted articles) it is found galloping back from there, then by bisection. */
static Py_ssize_t position_of(const Lengths *known, sqlite3_int64 id) {
    const sqlite3_int64 *ids = known->ids;
    Py_ssize_t count = known->count;
    if (!count || id < ids[0])
        return -1;
    sqlite3_int64 bound = id - ids[0];
    Py_ssize_t high = bound < count ? (Py_ssize_t)bound : count - 1; /* ID is here or before */
    if (ids[high] <= id)
        return ids[high] == id ? high : -1;
    Py_ssize_t step = 1, low = high - 1; /* ids[high] > id */
    while (low > 0 && ids[low] > id) {
        high = low;
        step *= 2;
        low = high > step ? high - step : 0;
    }
    while (low < high) { /* ids[low] <= id < ids[high], or low is 0 */
        Py_ssize_t middle = low + (high - low) / 2;
        if (ids[middle] < id)
            low = middle + 1;
        else
            high = middle;
    }
    return ids[low] == id ? low : -1;
}

static int known_length(const Lengths *known, sqlite3_int64 id) {
    Py_ssize_t at = position_of(known, id);
    return at < 0 ? -1 : known->lengths[at];
}

typedef struct {
    int phrases;
    double average_length; /* tokens per article */
    double *idf;           /* per phrase; NAN where the phrase weighs nothing */
    double *frequency;     /* per phrase, for the current row */
} Bm25Data;

static void bm25_data_free(void *p) {
    Bm25Data *data = p;
    if (data) {
        free(data->idf);
        free(data);
    }
}

static Bm25Data *bm25_data(const Fts5ExtensionApi *api, Fts5Context *fts, sqlite3_value *counts,
                           int *rc) {
    Bm25Data *data = api->xGetAuxdata(fts, 0);
    if (data)
        return data;
    int phrases = api->xPhraseCount(fts);
    if (sqlite3_value_type(counts) != SQLITE_BLOB ||
        sqlite3_value_bytes(counts) != phrases * (int)sizeof(double)) {
        *rc = SQLITE_MISMATCH;
        return NULL;
    }
    sqlite3_int64 rows = 0, tokens = 0;
    if ((*rc = api->xRowCount(fts, &rows)) != SQLITE_OK ||
        (*rc = api->xColumnTotalSize(fts, -1, &tokens)) != SQLITE_OK)
        return NULL;
    data = calloc(1, sizeof *data);
    double *arrays = calloc(2 * (size_t)(phrases ? phrases : 1), sizeof(double));
    if (!data || !arrays) {
        free(data);
        free(arrays);
        *rc = SQLITE_NOMEM;
        return NULL;
    }
    data->phrases = phrases;
    data->idf = arrays;
    data->frequency = arrays + phrases;
    data->average_length = rows ? (double)tokens / (double)rows : 1.0;
    const double *holding = sqlite3_value_blob(counts);
    for (int i = 0; i < phrases; i++) {
        double held;
        memcpy(&held, holding + i, sizeof held); /* the blob need not be aligned */
        if (held < 0) {
            data->idf[i] = NAN;
            continue;
        }
        double idf = log(((double)rows - held + 0.5) / (held + 0.5));
        data->idf[i] = idf > 0 ? idf : 1e-6;
    }
    if ((*rc = api->xSetAuxdata(fts, data, bm25_data_free)) != SQLITE_OK)
        return NULL; /* xSetAuxdata freed it */
    return data;
}

static void cached_bm25(const Fts5ExtensionApi *api, Fts5Context *fts, sqlite3_context *context,
                        int argc, sqlite3_value **argv) {
    if (argc < 1) {
        sqlite3_result_error(context, "cached_bm25: the phrases' counts are missing", -1);
        return;
    }
    int rc = SQLITE_OK;
    Bm25Data *data = bm25_data(api, fts, argv[0], &rc);
    if (!data) {
        if (rc == SQLITE_MISMATCH)
            sqlite3_result_error(context, "cached_bm25: need one double per phrase", -1);
        else
            sqlite3_result_error_code(context, rc);
        return;
    }
    int weights = argc - 1;
    memset(data->frequency, 0, sizeof(double) * (size_t)data->phrases);
    int instances = 0;
    if ((rc = api->xInstCount(fts, &instances)) != SQLITE_OK) {
        sqlite3_result_error_code(context, rc);
        return;
    }
    for (int i = 0; i < instances; i++) {
        int phrase, column, offset;
        if ((rc = api->xInst(fts, i, &phrase, &column, &offset)) != SQLITE_OK) {
            sqlite3_result_error_code(context, rc);
            return;
        }
        data->frequency[phrase] +=
            column < weights ? sqlite3_value_double(argv[1 + column]) : 1.0;
    }
    const Lengths *known = api->xUserData(fts);
    int length = known ? known_length(known, api->xRowid(fts)) : -1;
    if (length < 0 && (rc = api->xColumnSize(fts, -1, &length)) != SQLITE_OK) {
        sqlite3_result_error_code(context, rc);
        return;
    }
    double norm = K1 * (1 - B + B * length / data->average_length);
    double score = 0.0;
    for (int i = 0; i < data->phrases; i++) {
        double frequency = data->frequency[i];
        if (!isnan(data->idf[i]) && frequency)
            score += data->idf[i] * frequency * (K1 + 1) / (frequency + norm);
    }
    sqlite3_result_double(context, -score);
}

/* ---- a read-only connection of this SQLite, with cached_bm25 registered ---- */

typedef struct {
    PyObject_HEAD
    sqlite3 *db;
    Lengths lengths;
} Connection;

static void forget_all_lengths(Lengths *known) {
    free(known->ids);
    free(known->lengths);
    known->ids = NULL;
    known->lengths = NULL;
    known->count = 0;
}

static PyObject *error_of(sqlite3 *db, const char *doing) {
    PyErr_Format(PyExc_RuntimeError, "%s: %s", doing, db ? sqlite3_errmsg(db) : "out of memory");
    return NULL;
}

static int register_bm25(sqlite3 *db, Lengths *known) {
    fts5_api *fts = NULL;
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &stmt, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_pointer(stmt, 1, (void *)&fts, "fts5_api_ptr", NULL);
        sqlite3_step(stmt);
        rc = sqlite3_finalize(stmt);
    }
    if (rc != SQLITE_OK)
        return rc;
    if (!fts || fts->iVersion < 2)
        return SQLITE_ERROR;
    return fts->xCreateFunction(fts, "cached_bm25", known, cached_bm25, NULL);
}

static int Connection_init(Connection *self, PyObject *args, PyObject *kwargs) {
    static char *names[] = {"path", NULL};
    PyObject *path = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O&", names, PyUnicode_FSConverter, &path))
        return -1;
    if (self->db) {
        sqlite3_close(self->db);
        self->db = NULL;
    }
    forget_all_lengths(&self->lengths);
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = sqlite3_open_v2(PyBytes_AS_STRING(path), &self->db,
                         SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX, NULL);
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(self->db, 10000);
        rc = register_bm25(self->db, &self->lengths);
    }
    if (rc != SQLITE_OK) {
        error_of(self->db, "opening the database for ranking");
        sqlite3_close(self->db);
        self->db = NULL;
        return -1;
    }
    return 0;
}

static void Connection_dealloc(Connection *self) {
    sqlite3_close(self->db);
    forget_all_lengths(&self->lengths);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int bind(sqlite3_stmt *stmt, int i, PyObject *value) {
    if (value == Py_None)
        return sqlite3_bind_null(stmt, i);
    if (PyLong_Check(value)) {
        long long n = PyLong_AsLongLong(value);
        if (n == -1 && PyErr_Occurred())
            return -1;
        return sqlite3_bind_int64(stmt, i, n);
    }
    if (PyFloat_Check(value))
        return sqlite3_bind_double(stmt, i, PyFloat_AS_DOUBLE(value));
    if (PyUnicode_Check(value)) {
        Py_ssize_t size;
        const char *text = PyUnicode_AsUTF8AndSize(value, &size);
        return text ? sqlite3_bind_text(stmt, i, text, (int)size, SQLITE_TRANSIENT) : -1;
    }
    if (PyBytes_Check(value))
        return sqlite3_bind_blob(stmt, i, PyBytes_AS_STRING(value), (int)PyBytes_GET_SIZE(value),
                                 SQLITE_TRANSIENT);
    PyErr_Format(PyExc_TypeError, "parameter %d: cannot bind %.100s", i, Py_TYPE(value)->tp_name);
    return -1;
}

static PyObject *column(sqlite3_stmt *stmt, int i) {
    switch (sqlite3_column_type(stmt, i)) {
    case SQLITE_INTEGER:
        return PyLong_FromLongLong(sqlite3_column_int64(stmt, i));
    case SQLITE_FLOAT:
        return PyFloat_FromDouble(sqlite3_column_double(stmt, i));
    case SQLITE_TEXT:
        return PyUnicode_FromStringAndSize((const char *)sqlite3_column_text(stmt, i),
                                           sqlite3_column_bytes(stmt, i));
    case SQLITE_BLOB:
        return PyBytes_FromStringAndSize(sqlite3_column_blob(stmt, i),
                                         sqlite3_column_bytes(stmt, i));
    default:
        Py_RETURN_NONE;
    }
}

/* The statement of a (sql, parameters) call, prepared and bound, or NULL with the error set. */
static sqlite3_stmt *bound_statement(Connection *self, PyObject *args) {
    const char *sql;
    PyObject *parameters;
    if (!PyArg_ParseTuple(args, "sO!", &sql, &PyTuple_Type, &parameters))
        return NULL;
    if (!self->db) {
        PyErr_SetString(PyExc_RuntimeError, "the ranking connection is closed");
        return NULL;
    }
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2(self->db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        error_of(self->db, "preparing");
        sqlite3_finalize(stmt);
        return NULL;
    }
    if (!stmt) { /* only space or comments */
        PyErr_SetString(PyExc_RuntimeError, "preparing: no statement to run");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(parameters); i++) {
        int rc = bind(stmt, (int)i + 1, PyTuple_GET_ITEM(parameters, i));
        if (rc != SQLITE_OK) {
            if (rc != -1)
                error_of(self->db, "binding");
            sqlite3_finalize(stmt);
            return NULL;
        }
    }
    return stmt;
}

/* rows(sql, parameters): every row of one statement, as tuples. The statement is finished
 * before it returns, so no read snapshot is held between calls. */
static PyObject *Connection_rows(Connection *self, PyObject *args) {
    sqlite3_stmt *stmt = bound_statement(self, args);
    if (!stmt)
        return NULL;
    PyObject *rows = PyList_New(0);
    if (!rows)
        goto fail;
    int columns = sqlite3_column_count(stmt);
    for (;;) {
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = sqlite3_step(stmt);
        Py_END_ALLOW_THREADS
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW) {
            error_of(self->db, "ranking");
            goto fail;
        }
        PyObject *row = PyTuple_New(columns);
        if (!row)
            goto fail;
        for (int i = 0; i < columns; i++) {
            PyObject *value = column(stmt, i);
            if (!value) {
                Py_DECREF(row);
                goto fail;
            }
            PyTuple_SET_ITEM(row, i, value);
        }
        int appended = PyList_Append(rows, row);
        Py_DECREF(row);
        if (appended)
            goto fail;
    }
    sqlite3_finalize(stmt);
    return rows;
fail:
    sqlite3_finalize(stmt);
    Py_XDECREF(rows);
    return NULL;
}

/* ranked(sql, parameters): the rows of one statement whose two columns are an integer (an
 * id) and a real (its rank), as two bytes objects: native 64-bit integers and doubles, read by
 * numpy without a Python object a row (10,000 rows: tuples and the lists made from them cost
 * about a third of ranking them). */
static PyObject *Connection_ranked(Connection *self, PyObject *args) {
    sqlite3_stmt *stmt = bound_statement(self, args);
    if (!stmt)
        return NULL;
    if (sqlite3_column_count(stmt) != 2) {
        sqlite3_finalize(stmt);
        PyErr_SetString(PyExc_ValueError, "ranked: the statement must give an id and a rank");
        return NULL;
    }
    sqlite3_int64 *ids = NULL;
    double *ranks = NULL;
    Py_ssize_t count = 0, room = 0;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (count == room) {
            room = room ? 2 * room : 1024;
            sqlite3_int64 *more_ids = realloc(ids, (size_t)room * sizeof *ids);
            if (more_ids)
                ids = more_ids;
            double *more_ranks = realloc(ranks, (size_t)room * sizeof *ranks);
            if (more_ranks)
                ranks = more_ranks;
            if (!more_ids || !more_ranks) {
                rc = SQLITE_NOMEM;
                break;
            }
        }
        ids[count] = sqlite3_column_int64(stmt, 0);
        ranks[count] = sqlite3_column_double(stmt, 1);
        count++;
    }
    Py_END_ALLOW_THREADS
    PyObject *result = NULL;
    if (rc == SQLITE_DONE) {
        PyObject *id_bytes = PyBytes_FromStringAndSize((const char *)ids,
                                                       count * (Py_ssize_t)sizeof *ids);
        PyObject *rank_bytes = PyBytes_FromStringAndSize((const char *)ranks,
                                                         count * (Py_ssize_t)sizeof *ranks);
        if (id_bytes && rank_bytes)
            result = PyTuple_Pack(2, id_bytes, rank_bytes);
        Py_XDECREF(id_bytes);
        Py_XDECREF(rank_bytes);
    } else if (rc == SQLITE_NOMEM)
        PyErr_NoMemory();
    else
        error_of(self->db, "ranking");
    sqlite3_finalize(stmt);
    free(ids);
    free(ranks);
    return result;
}

static PyObject *Connection_close(Connection *self, PyObject *Py_UNUSED(ignored)) {
    sqlite3_close(self->db);
    self->db = NULL;
    forget_all_lengths(&self->lengths);
    Py_RETURN_NONE;
}

/* The sum of a docsize record's varints (one per column, SQLite's big-endian base 128). */
static int docsize_total(const unsigned char *record, int size) {
    long total = 0, value = 0;
    for (int i = 0; i < size; i++) {
        value = (value << 7) | (record[i] & 0x7f);
        if (!(record[i] & 0x80)) {
            total += value;
            value = 0;
        }
    }
    return total > 0x7fffffff ? 0x7fffffff : (int)total;
}

/* load_lengths(): every article's length from FTS5's docsize table, kept for cached_bm25;
 * returns how many. */
static PyObject *Connection_load_lengths(Connection *self, PyObject *Py_UNUSED(ignored)) {
    if (!self->db) {
        PyErr_SetString(PyExc_RuntimeError, "the ranking connection is closed");
        return NULL;
    }
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2(self->db, "SELECT id, sz FROM article_fts_docsize ORDER BY id", -1,
                           &stmt, NULL) != SQLITE_OK)
        return error_of(self->db, "reading the articles' lengths");
    Lengths loaded = {NULL, NULL, 0};
    Py_ssize_t room = 0;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (loaded.count == room) {
            room = room ? 2 * room : 4096;
            sqlite3_int64 *ids = realloc(loaded.ids, (size_t)room * sizeof *ids);
            if (ids)
                loaded.ids = ids;
            int *lengths = realloc(loaded.lengths, (size_t)room * sizeof *lengths);
            if (lengths)
                loaded.lengths = lengths;
            if (!ids || !lengths) {
                rc = SQLITE_NOMEM;
                break;
            }
        }
        loaded.ids[loaded.count] = sqlite3_column_int64(stmt, 0);
        loaded.lengths[loaded.count] =
            docsize_total(sqlite3_column_blob(stmt, 1), sqlite3_column_bytes(stmt, 1));
        loaded.count++;
    }
    Py_END_ALLOW_THREADS
    sqlite3_finalize(stmt);
    if (rc != SQLITE_DONE) {
        forget_all_lengths(&loaded);
        if (rc == SQLITE_NOMEM)
            return PyErr_NoMemory();
        return error_of(self->db, "reading the articles' lengths");
    }
    forget_all_lengths(&self->lengths);
    self->lengths = loaded;
    return PyLong_FromSsize_t(loaded.count);
}

/* forget_lengths(ids): bytes of native 64-bit ids whose lengths are looked up from now on. */
static PyObject *Connection_forget_lengths(Connection *self, PyObject *arg) {
    Py_buffer ids;
    if (PyObject_GetBuffer(arg, &ids, PyBUF_SIMPLE) < 0)
        return NULL;
    const sqlite3_int64 *id = ids.buf;
    for (Py_ssize_t i = 0; i < ids.len / (Py_ssize_t)sizeof *id; i++) {
        Py_ssize_t at = position_of(&self->lengths, id[i]);
        if (at >= 0)
            self->lengths.lengths[at] = -1;
    }
    PyBuffer_Release(&ids);
    Py_RETURN_NONE;
}

/* kept_length(id): the length kept for article ID, or None when it would be looked up. */
static PyObject *Connection_kept_length(Connection *self, PyObject *arg) {
    long long id = PyLong_AsLongLong(arg);
    if (id == -1 && PyErr_Occurred())
        return NULL;
    int length = known_length(&self->lengths, (sqlite3_int64)id);
    if (length < 0)
        Py_RETURN_NONE;
    return PyLong_FromLong(length);
}

static PyMethodDef Connection_methods[] = {
    {"rows", (PyCFunction)Connection_rows, METH_VARARGS,
     "rows(sql, parameters) -> list of tuples: every row of one statement"},
    {"ranked", (PyCFunction)Connection_ranked, METH_VARARGS,
     "ranked(sql, parameters) -> (ids, ranks): two columns as native int64 and double bytes"},
    {"close", (PyCFunction)Connection_close, METH_NOARGS, "close the connection"},
    {"load_lengths", (PyCFunction)Connection_load_lengths, METH_NOARGS,
     "load_lengths() -> int: keep every article's length (from FTS5's docsize table)"},
    {"forget_lengths", (PyCFunction)Connection_forget_lengths, METH_O,
     "forget_lengths(ids): native 64-bit ids whose lengths are looked up from now on"},
    {"kept_length", (PyCFunction)Connection_kept_length, METH_O,
     "kept_length(id) -> int or None: the length kept for an article (None: looked up)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ConnectionType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "db._bm25.Connection",
    .tp_doc = "Connection(path): a read-only connection with cached_bm25 registered",
    .tp_basicsize = sizeof(Connection),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Connection_init,
    .tp_dealloc = (destructor)Connection_dealloc,
    .tp_methods = Connection_methods,
};

/* same_sqlite(path): whether the shared object at PATH, already loaded (Python's _sqlite3),
 * reaches sqlite3_open_v2 at the address this module does: one copy of SQLite between them. */
static PyObject *same_sqlite(PyObject *Py_UNUSED(module), PyObject *arg) {
    PyObject *path = NULL;
    if (!PyUnicode_FSConverter(arg, &path))
        return NULL;
    void *handle = dlopen(PyBytes_AS_STRING(path), RTLD_LAZY | RTLD_NOLOAD);
    Py_DECREF(path);
    if (!handle)
        Py_RETURN_FALSE;
    void *theirs = dlsym(handle, "sqlite3_open_v2");
    dlclose(handle);
    return PyBool_FromLong(theirs == (void *)sqlite3_open_v2);
}

static PyObject *sqlite_version(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored)) {
    return PyUnicode_FromString(sqlite3_libversion());
}

static PyMethodDef module_methods[] = {
    {"same_sqlite", same_sqlite, METH_O,
     "same_sqlite(path) -> bool: the loaded shared object at PATH uses this module's SQLite"},
    {"sqlite_version", sqlite_version, METH_NOARGS, "the version of the SQLite linked"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "db._bm25",
    "bm25 over SQLite's FTS5 with phrase counts kept by the caller", -1, module_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__bm25(void) {
    if (PyType_Ready(&ConnectionType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (!module)
        return NULL;
    Py_INCREF(&ConnectionType);
    if (PyModule_AddObject(module, "Connection", (PyObject *)&ConnectionType) < 0) {
        Py_DECREF(&ConnectionType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
