"""Show and free the outputs that fine-tuning runs keep across runs (keras_notes/finetune/kept.py).

    keras-notes-cache list [--cache-dir DIR]
    keras-notes-cache clear [ENTRY ...] [--cache-dir DIR]

``list`` prints one line per entry, most recently used first: its name, the arch, image
size and cut it holds outputs of, how many images, its size and when it was last used.
``clear`` removes the named entries (a name as ``list`` prints it), or every entry.
"""

import argparse
import datetime
import sys

from keras_notes.cli._common import user_errors_exit_2
from keras_notes.errors import KerasNotesError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="keras-notes-cache", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("list", "clear"), help="list the entries, or remove them")
    parser.add_argument("entries", nargs="*", metavar="ENTRY", help="clear: the entries to remove (default: all)")
    parser.add_argument("--cache-dir", default=None,
                        help="the cache folder (default: $KERAS_NOTES_CACHE, else ~/.cache/keras_notes)")
    args = parser.parse_args(argv)
    if args.command == "list" and args.entries:
        parser.error(f"list takes no entry names; received {args.entries}")
    return args


def _describe(entry):
    key = entry.key
    cut = " + ".join(f"{name} {tuple(shape)}" for name, shape in key.get("boundary", ())) or "?"
    used = datetime.datetime.fromtimestamp(entry.used).strftime("%Y-%m-%d %H:%M")
    return (f"{entry.name}  {key.get('arch', '?')} {key.get('image_size', '?')} px at {cut}, weights "
            f"{key.get('weights_source', '?')}: {entry.images} images, {entry.bytes / 2 ** 20:.1f} MiB, used {used}")


@user_errors_exit_2
def main(argv=None):
    args = parse_args(argv)
    from keras_notes.finetune import kept

    entries = kept.list_entries(args.cache_dir)
    folder = kept.resolve_cache_dir(args.cache_dir)
    if args.command == "list":
        for entry in entries:
            print(_describe(entry))
        total = sum(entry.bytes for entry in entries)
        print(f"{len(entries)} entries, {total / 2 ** 20:.1f} MiB in {folder}")
        return 0
    by_name = {entry.name: entry for entry in entries}
    unknown = [name for name in args.entries if name not in by_name]
    if unknown:
        raise KerasNotesError(f"no kept-cache entry {unknown[0]!r} in {folder} (keras-notes-cache list shows them)")
    doomed = [by_name[name] for name in args.entries] if args.entries else entries
    for entry in doomed:
        kept.remove_entry(entry.path)
    print(f"removed {len(doomed)} entries, {sum(entry.bytes for entry in doomed) / 2 ** 20:.1f} MiB, from {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
