"""docs/architecture.md's tree table names every file of gateway/, in the folder it is in.

Run by ctest (docs_tree): a file added or moved without the map following fails here."""
import os
import re
import sys

root = sys.argv[1]
doc = open(os.path.join(root, "docs", "architecture.md")).read()
rows = {}
for m in re.finditer(r"^\| `gateway/([a-z0-9_]+)/` \|[^|]*\|(.*)\|$", doc, re.M):
    rows[m.group(1)] = set(re.findall(r"`([a-z0-9_.]+)`", m.group(2)))
missing = []
gw = os.path.join(root, "gateway")
for folder in sorted(os.listdir(gw)):
    if not os.path.isdir(os.path.join(gw, folder)):
        continue
    for name in sorted(os.listdir(os.path.join(gw, folder))):
        stem, ext = os.path.splitext(name)
        if ext not in (".c", ".h"):
            continue
        named = rows.get(folder, set())
        if stem not in named and name not in named:
            missing.append("gateway/%s/%s" % (folder, name))
if missing:
    print("docs/architecture.md, table under '## The tree': add these to their folder's row:")
    print("\n".join("  " + m for m in missing))
    sys.exit(1)
print("docs/architecture.md names all %d folders' files" % len(rows))
