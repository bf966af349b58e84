"""Keras's per-type "attributes not to save" sets, computed once instead of once per layer.

Saving or loading with Keras 3's own format (a ``.keras`` file, a ``.weights.h5`` file, a
``BackupAndRestore`` backup) walks every layer, and for each asks
``saving_lib.get_attr_skipset(type)`` which attributes hold no state. That function builds a
throwaway ``Layer()`` (or ``Optimizer``, ``Metric``...) and ``dir()``s it, and means to keep
the result in Keras's global state; but it stores it under ``saving_attr_skipset_<type>``
and looks for it under ``saving_attr_skiplist_<type>`` (Keras 3.15), so it builds one for
every layer of every save and load: 280 for a MobileNet run's base load and saved model.

``memoize_saving_skipsets()`` stores Keras's own sets under the name it looks for. They are
what ``get_attr_skipset`` returns anyway, so what is saved and loaded does not change
(``tests/test_saving_memo.py``); only the repeated work goes. Measured on a 2-core CPU,
medians of 3 fresh processes: building MobileNet with a local weights file 0.67 -> 0.57 s,
saving it as ``.keras`` 0.27 -> 0.19 s, loading its base weights again 0.22 -> 0.15 s.

Keras keeps its global state per thread and ``keras.backend.clear_session()`` empties it,
so the call belongs just before the work (it costs a few look-ups when already done). On a
Keras without the function or the global state it does nothing.
"""

SKIPSET_TYPES = ("Operation", "Layer", "Functional", "Sequential", "Metric", "Optimizer", "Loss")
LOOKED_UP_AS = "saving_attr_skiplist_{}"  # the name get_attr_skipset reads (it writes "..._skipset_...")


def memoize_saving_skipsets():
    """Store each type's skip set where ``get_attr_skipset`` looks first; -> the types stored now."""
    try:
        from keras.src.backend.common import global_state
        from keras.src.saving import saving_lib
    except ImportError:  # another Keras layout: nothing to memoize
        return ()
    skipset = getattr(saving_lib, "get_attr_skipset", None)
    if skipset is None:
        return ()
    stored = []
    for obj_type in SKIPSET_TYPES:
        name = LOOKED_UP_AS.format(obj_type)
        if global_state.get_global_attribute(name) is None:
            global_state.set_global_attribute(name, skipset(obj_type))
            stored.append(obj_type)
    return tuple(stored)
