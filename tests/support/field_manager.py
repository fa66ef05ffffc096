"""Field ownership as the Kubernetes API server keeps it, for the stand-in (kube_api.py):
server-side apply (`application/apply-patch+yaml`) with `managedFields`, conflicts and
`force`, and the ownership that an ordinary patch (an Update) takes.

The rules, from the API's documentation (reference/using-api/server-side-apply):
- every field an apply names is owned by its field manager (operation Apply); a map's keys
  (labels, annotations) are fields of their own, a list is one atomic field (as CRD lists
  without list-type markers are);
- an apply that sets a field another manager owns to a *different* value is a conflict: a 409
  that names each manager and field, unless `force=true`, which takes the field over; the
  same value makes the managers co-owners;
- a field the manager applied before and leaves out of this apply is removed from the
  object, unless another manager owns it too: so an apply with no fields removes what the
  manager set;
- an Update (merge, strategic or JSON patch) takes the fields it changes from every other
  manager.
Fields are paths: tuples of keys. `managedFields` holds them as FieldsV1 (`f:KEY` objects).
"""

import datetime
import json

# Metadata that names or versions the object: never a managed field.
IDENTITY = {"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
            "managedFields", "selfLink", "deletionTimestamp", "generateName"}


class Conflict(Exception):
    """An apply that would change fields other managers own: `causes` is [(manager, field)]."""

    def __init__(self, causes, api_version):
        super().__init__("conflict")
        self.causes = causes
        self.api_version = api_version

    def status(self):
        """The 409 Status the API server answers, its message as the API server words it."""
        managers = sorted({m for m, _ in self.causes})
        count = len(self.causes)
        plural = "s" if count > 1 else ""
        if len(managers) == 1 and count == 1:
            manager, field = self.causes[0]
            message = (f'Apply failed with 1 conflict: conflict with "{manager}" using '
                       f"{self.api_version}: {field}")
        elif len(managers) == 1:
            message = (f'Apply failed with {count} conflicts: conflicts with "{managers[0]}" using '
                       f"{self.api_version}:\n" + "\n".join(f"- {f}" for _, f in self.causes))
        else:
            message = f"Apply failed with {count} conflict{plural}: " + "\n".join(
                f'conflict with "{m}" using {self.api_version}: {f}' for m, f in self.causes)
        causes = [{"reason": "FieldManagerConflict",
                   "message": f'conflict with "{m}" using {self.api_version}', "field": f}
                  for m, f in self.causes]
        return 409, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                     "message": message, "reason": "Conflict", "details": {"causes": causes},
                     "code": 409}


def leaves(value, path=()):
    """The field paths of an object: every map key down to a scalar or a list (atomic); an
    empty map names no field."""
    if isinstance(value, dict):
        found = set()
        for key, item in value.items():
            if not path and key in ("apiVersion", "kind"):
                continue
            if path == ("metadata",) and key in IDENTITY:
                continue
            found |= leaves(item, path + (key,))
        return found
    return {path}


def at(obj, path):
    """The value at `path`, or a marker when it is absent."""
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return ABSENT
        obj = obj[key]
    return obj


ABSENT = object()


def put(obj, path, value):
    for key in path[:-1]:
        obj = obj.setdefault(key, {})
    obj[path[-1]] = value


def drop(obj, path):
    """Removes `path`, and the maps it leaves empty."""
    parents = []
    for key in path[:-1]:
        if not isinstance(obj, dict) or key not in obj:
            return
        parents.append((obj, key))
        obj = obj[key]
    if isinstance(obj, dict):
        obj.pop(path[-1], None)
    for parent, key in reversed(parents):
        if parent[key] == {}:
            del parent[key]


def dotted(path):
    """The field as the API server's conflict message writes it: `.metadata.annotations.KEY`."""
    return "".join(f".{key}" for key in path)


def to_fields_v1(paths):
    out = {}
    for path in sorted(paths):
        node = out
        for key in path:
            node = node.setdefault(f"f:{key}", {})
    return out


def from_fields_v1(fields, path=()):
    found = set()
    for key, child in (fields or {}).items():
        if not key.startswith("f:"):
            continue
        here = path + (key[2:],)
        if child:
            found |= from_fields_v1(child, here)
        else:
            found.add(here)
    return found


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def entries(obj):
    """[(manager, operation, paths, entry)] of the object's managedFields."""
    out = []
    for entry in obj.get("metadata", {}).get("managedFields") or []:
        out.append((entry.get("manager", ""), entry.get("operation", "Update"),
                    from_fields_v1(entry.get("fieldsV1")), entry))
    return out


def write_entries(obj, owned, api_version):
    """Writes `owned` ({(manager, operation): paths}) back as managedFields, keeping times."""
    old = {(m, op): e for m, op, _, e in entries(obj)}
    managed = []
    for (manager, operation), paths in owned.items():
        if not paths:
            continue
        entry = dict(old.get((manager, operation), {}))
        entry.update({"manager": manager, "operation": operation, "apiVersion": api_version,
                      "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(paths)})
        entry.setdefault("time", now())
        managed.append(entry)
    obj.setdefault("metadata", {})["managedFields"] = managed


def apply(current, body, manager, force):
    """`current` after `body` is applied by `manager` (a new object: the caller deep-copies);
    raises Conflict. Answers (result, changed_paths)."""
    api_version = current.get("apiVersion", "v1")
    applied = leaves(body)
    owned = {(m, op): set(paths) for m, op, paths, _ in entries(current)}
    mine = (manager, "Apply")
    conflicts = []
    for path in sorted(applied):
        if at(body, path) == at(current, path):
            continue
        for (other, operation), paths in owned.items():
            if (other, operation) != mine and other != manager and path in paths:
                conflicts.append((other, dotted(path)))
    if conflicts and not force:
        raise Conflict(conflicts, api_version)
    result = json.loads(json.dumps(current))
    if force:
        for key, paths in owned.items():
            if key != mine and key[0] != manager:
                paths -= {p for p in applied if at(body, p) != at(current, p)}
    # The manager's own Update entry gives way to its Apply: one owner per manager.
    owned.pop((manager, "Update"), None)
    before = owned.get(mine, set())
    for path in before - applied:
        if not any(path in paths for key, paths in owned.items() if key != mine):
            drop(result, path)
    for path in applied:
        put(result, path, json.loads(json.dumps(at(body, path))))
    owned[mine] = set(applied)
    write_entries(result, owned, api_version)
    changed = {p for p in (applied | before) if at(result, p) != at(current, p)}
    return result, changed


def update(current, patched, manager):
    """Ownership after an ordinary patch by `manager`: the fields it changed are its own."""
    api_version = current.get("apiVersion", "v1")
    changed = {p for p in leaves(patched) | leaves(current) if at(patched, p) != at(current, p)}
    owned = {(m, op): set(paths) for m, op, paths, _ in entries(current)}
    mine = (manager, "Update")
    for key, paths in owned.items():
        if key != mine:
            paths -= changed
    owned.setdefault(mine, set()).update(p for p in changed if at(patched, p) is not ABSENT)
    write_entries(patched, owned, api_version)
    return patched
