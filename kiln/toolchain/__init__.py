"""What builds: the pinned compiler, the target CPython's description, sysroots, the sandbox.

Everything here is pinned and described, never discovered from the host: the zig
toolchain and its wrappers (``zig``), the CPython headers and build configuration kiln
fixes per X.Y and target (``cpython``), Debian's signed archive (``debian``), foreign
CPythons under qemu (``emulation``), the sandbox (``sandbox``) and the platforms kiln
knows (``targets``). The host's own interpreters and tools are described here too
(``interpreters``, ``hosttools``, ``sysdeps``): the host backend builds with them, and
every build records them. What is built (recipes, locks, the pipeline, repair, records)
lives outside this package and only asks it for a toolchain.
"""
