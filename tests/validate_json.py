"""Validates idrift's reports against JSON Schemas; the Rust tests run it.

    validate_json.py schema SCHEMA_FILE [--strict] INSTANCE_FILE
    validate_json.py ocsf VERSION CLASS PROFILE[,PROFILE...] JSONL_FILE

`schema` checks one JSON document against a schema file; --strict first
sets "additionalProperties": false on every object schema that lists
properties and allows any others, so an undocumented field fails.
`ocsf` builds the JSON Schema of an OCSF class, with the given profiles,
from the OCSF schema export that the ocsf-json-schema package ships, and
checks every line of a JSON Lines file against it.

Prints each violation and exits 1 if there is any, 3 if a package is missing.
"""

import json
import sys

try:
    import jsonschema
except ImportError as error:
    print(f"{error}; install it with: pip install jsonschema ocsf-json-schema==1.2.0")
    sys.exit(3)


def strict(schema):
    """Returns the schema with unknown properties rejected everywhere."""
    if isinstance(schema, dict):
        schema = {key: strict(value) for key, value in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


def check(schema, instances):
    """Prints the violations of each instance and returns their count."""
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    count = 0
    for number, instance in enumerate(instances, start=1):
        for error in validator.iter_errors(instance):
            path = "/".join(str(part) for part in error.absolute_path)
            print(f"instance {number} at /{path}: {error.message}")
            count += 1
    return count


def main(arguments):
    if arguments[:1] == ["schema"]:
        schema_file, instance_file = arguments[1], arguments[-1]
        with open(schema_file, encoding="utf-8") as file:
            schema = json.load(file)
        if "--strict" in arguments:
            schema = strict(schema)
        with open(instance_file, encoding="utf-8") as file:
            instances = [json.load(file)]
    elif arguments[:1] == ["ocsf"] and len(arguments) == 5:
        try:
            from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema
        except ImportError as error:
            print(f"{error}; install it with: pip install ocsf-json-schema==1.2.0")
            return 3
        version, class_name, profiles, instance_file = arguments[1:]
        ocsf = OcsfJsonSchemaEmbedded(get_ocsf_schema(version=version))
        schema = ocsf.get_class_schema(class_name=class_name, profiles=profiles.split(","))
        with open(instance_file, encoding="utf-8") as file:
            instances = [json.loads(line) for line in file if line.strip()]
        if not instances:
            print(f"{instance_file} holds no events")
            return 1
    else:
        print(__doc__)
        return 2
    return 1 if check(schema, instances) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
