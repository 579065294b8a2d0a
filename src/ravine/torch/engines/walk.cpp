// The fused implementation's per-step checks, walking a parameter list in C++.
//
// Each function here has a Python twin in walk.py with the same meaning; this one reads
// tensors through ATen instead of several Python calls per tensor (50–200 ns per tensor
// instead of 1.9–3.5 µs: milliseconds per step for a model with thousands of tensors).
// Any doubt (a non-tensor, a wrapper without storage, an exception) answers "not ready",
// which sends the step down the general path: nothing here can make a step wrong.
#include <Python.h>

#include <torch/csrc/autograd/python_variable.h>

#include <cstdint>
#include <exception>

namespace {

// True when t's memory holds exactly its values as dense elements of its dtype.
bool plain(const at::Tensor& t) {
    return t.defined() && t.layout() == c10::kStrided && t.has_storage() &&
           t.device().is_cpu() && t.is_contiguous() && !t.is_conj() && !t.is_neg();
}

// Where t's elements start; -1 if a non-empty tensor has no memory (a wrapper). Tensors
// the kernel writes are asked for their mutable address (a lazily copied storage is
// materialized first), gradients for the read-only one.
int64_t address(const at::Tensor& t, bool written) {
    const void* data = written ? t.data_ptr() : t.const_data_ptr();
    return data == nullptr && t.numel() != 0 ? -1 : reinterpret_cast<int64_t>(data);
}

// The tensor held by a Python object, or nullptr if it is not a tensor.
const at::Tensor* tensor(PyObject* item) {
    try {
        return THPVariable_Check(item) ? &THPVariable_Unpack(item) : nullptr;
    } catch (...) {  // an isinstance check that raised
        PyErr_Clear();
        return nullptr;
    }
}

// Whether member k (parameter p, its gradient g and its state tensors) still matches the
// plan; writes g's address into row 1 of the table.
bool member_ready(const at::Tensor& p, const at::Tensor& g, PyObject* state, PyObject* fields,
                  int64_t* table, Py_ssize_t n, Py_ssize_t k, int64_t size,
                  c10::ScalarType param_type, c10::ScalarType storage_type) {
    // the parameter: where, what and how big it was when planned (p.data = … may swap in
    // another tensor at the same address)
    const int64_t real = p.is_complex() ? 2 : 1;
    if (!plain(p) || p.scalar_type() != param_type || p.numel() * real != size ||
        address(p, true) != table[k]) {
        return false;
    }
    // the gradient: streamable, and exactly the parameter's shape and dtype
    if (!plain(g) || g.scalar_type() != param_type || g.sizes() != p.sizes()) return false;
    const int64_t g_address = address(g, false);
    if (g_address == -1) return false;
    table[n + k] = g_address;
    // the state tensors: still the planned memory (x.data = … is no dict write)
    for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(fields); ++j) {
        PyObject* value = PyDict_GetItemWithError(state, PyTuple_GET_ITEM(fields, j));
        const at::Tensor* t = value == nullptr ? nullptr : tensor(value);
        if (t == nullptr || !plain(*t) || t->scalar_type() != storage_type ||
            t->numel() != size || address(*t, true) != table[(2 + j) * n + k]) {
            return false;
        }
    }
    return true;
}

// refresh(params: tuple, grads: sequence | None, states: tuple[dict], fields: tuple[str],
//         table: int64 [2 + len(fields), n], offsets: int64 [n + 1],
//         param_type: Tensor, storage_type: Tensor) -> bool
// Row 0 of table holds the parameters' addresses as planned, rows 2… the state tensors'
// (fields, in order); row 1 receives the gradients'. offsets[k + 1] - offsets[k] is member
// k's size in storage elements; param_type and storage_type are tensors of the planned
// dtypes. grads None reads each parameter's .grad. True when every member still matches.
PyObject* refresh(PyObject*, PyObject* args) {
    PyObject *params, *grads, *states, *fields, *param_type, *storage_type;
    Py_buffer buffer, offsets_buffer;
    if (!PyArg_ParseTuple(args, "O!OO!O!w*y*OO", &PyTuple_Type, &params, &grads, &PyTuple_Type,
                          &states, &PyTuple_Type, &fields, &buffer, &offsets_buffer,
                          &param_type, &storage_type)) {
        return nullptr;
    }
    const Py_ssize_t n = PyTuple_GET_SIZE(params);
    const Py_ssize_t rows = 2 + PyTuple_GET_SIZE(fields);
    PyObject* given = nullptr;
    const char* problem = nullptr;
    if (buffer.len < static_cast<Py_ssize_t>(rows * n * sizeof(int64_t))) {
        problem = "refresh: the table has fewer than 2 + len(fields) rows of n";
    } else if (offsets_buffer.len < static_cast<Py_ssize_t>((n + 1) * sizeof(int64_t))) {
        problem = "refresh: offsets has fewer than n + 1 entries";
    } else if (PyTuple_GET_SIZE(states) != n) {
        problem = "refresh: params and states differ in length";
    } else if (tensor(param_type) == nullptr || tensor(storage_type) == nullptr) {
        problem = "refresh: param_type and storage_type must be tensors";
    } else if (grads != Py_None) {
        given = PySequence_Fast(grads, "refresh: grads must be a sequence or None");
        if (given != nullptr && PySequence_Fast_GET_SIZE(given) != n) {
            problem = "refresh: params and grads differ in length";
        }
    }
    if (problem != nullptr || (grads != Py_None && given == nullptr)) {
        if (problem != nullptr) PyErr_SetString(PyExc_ValueError, problem);
        Py_XDECREF(given);
        PyBuffer_Release(&buffer);
        PyBuffer_Release(&offsets_buffer);
        return nullptr;
    }
    auto* table = static_cast<int64_t*>(buffer.buf);
    const auto* offsets = static_cast<const int64_t*>(offsets_buffer.buf);
    const c10::ScalarType p_type = tensor(param_type)->scalar_type();
    const c10::ScalarType s_type = tensor(storage_type)->scalar_type();
    bool ready = true;
    try {
        for (Py_ssize_t k = 0; ready && k < n; ++k) {
            const at::Tensor* p = tensor(PyTuple_GET_ITEM(params, k));
            PyObject* state = PyTuple_GET_ITEM(states, k);
            if (p == nullptr || !PyDict_Check(state)) {
                ready = false;
                break;
            }
            const at::Tensor* g =
                given != nullptr ? tensor(PySequence_Fast_GET_ITEM(given, k)) : &p->grad();
            ready = g != nullptr && member_ready(*p, *g, state, fields, table, n, k,
                                                 offsets[k + 1] - offsets[k], p_type, s_type);
        }
    } catch (...) {
        ready = false;
    }
    if (PyErr_Occurred()) PyErr_Clear();  // e.g. an isinstance check that raised: not ready
    Py_XDECREF(given);
    PyBuffer_Release(&buffer);
    PyBuffer_Release(&offsets_buffer);
    return PyBool_FromLong(ready);
}

// same(items: sequence, expected: tuple) -> bool: the same objects, in the same order.
PyObject* same(PyObject*, PyObject* args) {
    PyObject* items;
    PyObject* expected;
    if (!PyArg_ParseTuple(args, "OO!", &items, &PyTuple_Type, &expected)) return nullptr;
    PyObject* fast = PySequence_Fast(items, "same: items must be a sequence");
    if (fast == nullptr) return nullptr;
    const Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    bool equal = n == PyTuple_GET_SIZE(expected);
    for (Py_ssize_t i = 0; equal && i < n; ++i) {
        equal = PySequence_Fast_GET_ITEM(fast, i) == PyTuple_GET_ITEM(expected, i);
    }
    Py_DECREF(fast);
    return PyBool_FromLong(equal);
}

// The arguments of agree and put: (states, keys, values), three tuples, keys and values
// of one length.
bool parse_entries(PyObject* args, const char* name, PyObject** states, PyObject** keys,
                   PyObject** values) {
    if (!PyArg_ParseTuple(args, "O!O!O!", &PyTuple_Type, states, &PyTuple_Type, keys,
                          &PyTuple_Type, values)) {
        return false;
    }
    if (PyTuple_GET_SIZE(*values) != PyTuple_GET_SIZE(*keys)) {
        PyErr_Format(PyExc_ValueError, "%s: keys and values differ in length", name);
        return false;
    }
    return true;
}

// agree(states: tuple[dict], keys: tuple[str], values: tuple) -> bool: every state holds
// values[j] under keys[j] (compared with ==).
PyObject* agree(PyObject*, PyObject* args) {
    PyObject *states, *keys, *values;
    if (!parse_entries(args, "agree", &states, &keys, &values)) return nullptr;
    const Py_ssize_t m = PyTuple_GET_SIZE(keys);
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(states); ++i) {
        PyObject* state = PyTuple_GET_ITEM(states, i);
        if (!PyDict_Check(state)) Py_RETURN_FALSE;
        for (Py_ssize_t j = 0; j < m; ++j) {
            PyObject* value = PyDict_GetItemWithError(state, PyTuple_GET_ITEM(keys, j));
            if (value == nullptr) {
                if (PyErr_Occurred()) return nullptr;
                Py_RETURN_FALSE;
            }
            Py_INCREF(value);  // == may run Python code that changes the dict
            const int equal = PyObject_RichCompareBool(value, PyTuple_GET_ITEM(values, j), Py_EQ);
            Py_DECREF(value);
            if (equal < 0) return nullptr;
            if (!equal) Py_RETURN_FALSE;
        }
    }
    Py_RETURN_TRUE;
}

// put(states: tuple[dict], keys: tuple[str], values: tuple) -> None: dict.__setitem__ on
// every state (a plain dict write: not reported as a change by ParamState).
PyObject* put(PyObject*, PyObject* args) {
    PyObject *states, *keys, *values;
    if (!parse_entries(args, "put", &states, &keys, &values)) return nullptr;
    const Py_ssize_t m = PyTuple_GET_SIZE(keys);
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(states); ++i) {
        PyObject* state = PyTuple_GET_ITEM(states, i);
        if (!PyDict_Check(state)) {
            PyErr_SetString(PyExc_TypeError, "put: states must be dicts");
            return nullptr;
        }
        for (Py_ssize_t j = 0; j < m; ++j) {
            if (PyDict_SetItem(state, PyTuple_GET_ITEM(keys, j), PyTuple_GET_ITEM(values, j))) {
                return nullptr;
            }
        }
    }
    Py_RETURN_NONE;
}

PyMethodDef methods[] = {
    {"refresh", refresh, METH_VARARGS, "Check parameters, read gradient pointers."},
    {"same", same, METH_VARARGS, "Whether a list holds exactly the expected objects."},
    {"agree", agree, METH_VARARGS, "Whether every state holds the given values."},
    {"put", put, METH_VARARGS, "Write the given values into every state."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ravine_walk", nullptr, -1, methods};

}  // namespace

PyMODINIT_FUNC PyInit__ravine_walk() { return PyModule_Create(&module); }
