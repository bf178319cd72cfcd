"""``otelbpf top``: a live terminal view of what every BPF program on the host costs and how full
every map is, measured by the same health code the agent exports (``otelbpf.health``).

``sample.py`` takes one reading per refresh, ``table.py`` lays out the columns, ``view.py`` is the
urwid screen, ``command.py`` the command line; ``targets.py``, ``owners.py`` and ``ours.py`` say
what each program is attached to, which processes hold it and which ones otelbpf loaded.
"""
