"""LLVM IR functions compiled once per machine into one native library that numba kernels call
by symbol, instead of numba linking (and re-optimising, re-generating) their IR into every caller.

Why: numba links a callee into its caller as *IR*: a kernel's library gets a copy of every
function it calls, directly or not, and LLVM optimises and generates machine code for all of it
again, once for the parallel kernel's gufunc and once for the kernel around it. The FMA tiles
(:mod:`.tiles`: 15 register-blocked loop nests per dtype) were compiled up to seven times in the
seed model's first step that way (``benchmarks/compile_profile.py`` has the per-kernel table).

Here the functions are emitted by their Python emitters into one LLVM module, optimised at O3 and
compiled to machine code for the CPU numba targets (the same CPU name, features and relocation
model as numba's JIT, so ``NUMBA_CPU_NAME``/``NUMBA_CPU_FEATURES`` apply), loaded into an MCJIT
engine of their own, and every function's address is registered with LLVM's process-wide symbol
table (``llvmlite.binding.add_symbol``), where numba's linker resolves a declared, undefined
function. A kernel's IR then holds only a declaration and a call: its cached object code refers
to the symbol by name, which this module defines in every process before any kernel is loaded
(:mod:`.tiles` builds its library at import).

**Cache.** The object code is cached on disk as ``minicnn-native-<name>-<key>.o`` in numba's cache
directory (``NUMBA_CACHE_DIR``, else this package's ``__pycache__`` if writable; with neither, it
is compiled in memory every process). ``key`` is a SHA-256 of the emitters' source files, the
functions' signatures, the target (triple, CPU name, features), llvmlite's and numba's versions
and the optimisation level: editing an emitter, or another CPU, gives another file. It is written to a temporary file and renamed, so a reader
never sees a partial file, and carries a SHA-256 of the object code: a file that fails it
(truncated, damaged) is never loaded, the library is compiled again and the file replaced.

**Arithmetic.** The IR is what the emitters build, optimised by the same O3 pipeline and code
generator as before (no fastmath flags: LLVM may not reassociate or contract), so every result is
bitwise what the same IR gave inlined into the kernels' modules.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from pathlib import Path

import llvmlite
import llvmlite.binding as llvm
import numba
from llvmlite import ir
from numba.core import codegen as _numba_codegen

__all__ = ["NativeLibrary", "cache_dir", "write_cache_file"]

#: LLVM optimisation level of the library (numba's JIT default, ``NUMBA_OPT``: 3)
OPT = 3


def cache_dir() -> Path | None:
    """Where the object code is cached: numba's ``NUMBA_CACHE_DIR``, else this package's
    ``__pycache__`` if it can be written, else None (no cache)."""
    configured = numba.config.CACHE_DIR
    if configured:
        return Path(configured)
    here = Path(__file__).resolve().parent / "__pycache__"
    try:
        here.mkdir(exist_ok=True)
    except OSError:
        return None
    return here if os.access(here, os.W_OK) else None


def _target_machine():
    """A target machine configured as numba's JIT code generator configures its own."""
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    target = llvm.Target.from_triple(llvm.get_process_triple())
    cpu = llvm.get_host_cpu_name() if numba.config.CPU_NAME is None else numba.config.CPU_NAME
    features = (numba.config.CPU_FEATURES if numba.config.CPU_FEATURES is not None
                else _numba_codegen.get_host_cpu_features())
    reloc = "static" if target.name.startswith("x86") else "pic" if target.name.startswith("ppc") else "default"
    return target.create_target_machine(cpu=cpu, features=features, opt=OPT, reloc=reloc,
                                        codemodel="jitdefault", jit=True), cpu, features


class NativeLibrary:
    """Functions ``name -> (parameter types, emit)`` built into one native library.

    ``emit(builder, args)`` writes a ``void`` function's body (it must end with ``ret void``
    itself or leave the block open: :meth:`build` adds the ``ret void``). :meth:`build` compiles
    (or loads the cached object code) and registers every symbol; after it, IR anywhere in the
    process may declare and call the functions (:meth:`declare`)."""

    def __init__(self, name: str):
        self.name = name
        self._functions = {}
        self._engine = None  # keeps the machine code alive for the process
        self._lock = threading.Lock()
        #: where the object code came from after :meth:`build`: "cache", "compiled" or None
        self.source = None
        self.path = None

    @property
    def built(self) -> bool:
        """Whether :meth:`build` has finished: every symbol registered."""
        return self._engine is not None

    def add(self, symbol: str, params, emit) -> None:
        if self._engine is not None:
            raise RuntimeError(f"native library {self.name!r}: add({symbol!r}) after build()")
        if symbol in self._functions:
            raise ValueError(f"native library {self.name!r}: {symbol!r} defined twice")
        self._functions[symbol] = (tuple(params), emit)

    def fnty(self, symbol: str) -> ir.FunctionType:
        return ir.FunctionType(ir.VoidType(), list(self._functions[symbol][0]))

    def declare(self, module: ir.Module, symbol: str) -> ir.Function:
        """``symbol``'s declaration in ``module`` (an existing one is reused)."""
        fn = module.globals.get(symbol)
        if fn is None:
            fn = ir.Function(module, self.fnty(symbol), symbol)
        return fn

    def _module_ir(self) -> str:
        mod = ir.Module(name=f"minicnn_native_{self.name}")
        mod.triple = llvm.get_process_triple()
        for symbol, (params, emit) in self._functions.items():
            fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), list(params)), symbol)
            builder = ir.IRBuilder(fn.append_basic_block("entry"))
            emit(builder, list(fn.args))
            if not builder.block.is_terminated:
                builder.ret_void()
        return str(mod)

    def _compile(self, text: str, tm) -> bytes:
        mod = llvm.parse_assembly(text)
        mod.verify()
        mod.data_layout = str(tm.target_data)
        pto = llvm.create_pipeline_tuning_options(speed_level=OPT)
        pb = llvm.create_pass_builder(tm, pto)
        pb.getModulePassManager().run(mod, pb)
        return tm.emit_object(mod)

    def _key(self, cpu: str, features: str) -> str:
        """The cache key: the source files of the emitters and of this module (the IR is built
        from them alone: generating it to hash it would cost ~0.2 s per process), the functions'
        names and parameter types, the target and the versions of llvmlite and numba."""
        files = sorted({Path(emit.__code__.co_filename) for _, emit in self._functions.values()} | {Path(__file__)})
        h = hashlib.sha256()
        for f in files:
            h.update(f.read_bytes())
        for symbol, (params, _) in self._functions.items():
            h.update(f"{symbol}({', '.join(map(str, params))})".encode())
        h.update("\n".join([llvm.get_process_triple(), cpu, features, llvmlite.__version__, numba.__version__,
                            str(OPT)]).encode())
        return h.hexdigest()[:24]

    def build(self) -> "NativeLibrary":
        """Compile or load the library and register its symbols (once; later calls return, and
        concurrent ones wait for the first: a model's warm-up may compile on another thread)."""
        if self._engine is not None:
            return self
        with self._lock:
            if self._engine is None:
                self._build()
        return self

    def _build(self) -> None:
        tm, cpu, features = _target_machine()
        key = self._key(cpu, features)
        where = cache_dir()
        path = where / f"minicnn-native-{self.name}-{key}.o" if where is not None else None
        obj = _read_checked(path) if path is not None else None
        self.source = "cache"
        if obj is None:  # absent, unreadable, or not what was written (truncated, overwritten)
            obj = self._compile(self._module_ir(), tm)
            self.source = "compiled"
            if path is not None:
                write_cache_file(path, _MAGIC + hashlib.sha256(obj).digest() + obj)
        engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), tm)
        engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
        engine.finalize_object()
        for symbol in self._functions:
            addr = engine.get_function_address(symbol)
            if not addr:
                raise RuntimeError(f"native library {self.name!r}: {symbol!r} missing from its object code")
            llvm.add_symbol(symbol, addr)
        self._engine, self.path = engine, path


#: the cache file's first bytes, then the SHA-256 of the object code, then the object code
_MAGIC = b"minicnn native object 1\n"


def _read_checked(path: Path) -> bytes | None:
    """The object code in the cache file ``path``, or None if it is absent, unreadable or fails
    its checksum (a damaged object file could crash LLVM's loader, so it is never loaded)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    head, digest, obj = data[:len(_MAGIC)], data[len(_MAGIC):len(_MAGIC) + 32], data[len(_MAGIC) + 32:]
    return obj if head == _MAGIC and hashlib.sha256(obj).digest() == digest else None


def write_cache_file(path: Path, data: bytes) -> None:
    """``data`` to ``path`` through a temporary file in the same directory, then a rename, with the
    permissions numba gives its own cache files; a cache directory that cannot be written is
    skipped (the caller goes on without the file). The library's object code and
    :mod:`.cachestamp`'s stamp are written with it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as numba's own cache files (mkstemp makes it owner-only)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
