"""Read and write Cloud Storage objects with Google's own client.

The end-to-end tests (test_e2e_*.c) use this to look at what the workers
wrote to fake-gcs-server, and to play "another writer", through
google-cloud-storage (pinned in tests/conformance/requirements.txt) rather
than runpool's own code: if runpool's objects are readable here, they are
readable by any backend that uses Google's client.

    gcs_object.py get BUCKET OBJECT     object bytes to stdout, with
                                        "generation=N" on stderr; exit 3 if
                                        the object does not exist
    gcs_object.py put BUCKET OBJECT     stdin becomes the object
                                        (unconditional, as another writer)
    gcs_object.py list BUCKET PREFIX    one object name per line

STORAGE_EMULATOR_HOST must be set: the client then talks to the emulator
without credentials, as it would in any test against fake-gcs-server.
"""
import os
import sys

from google.api_core import exceptions
from google.cloud import storage


def main(argv):
    if len(argv) != 4 or argv[1] not in ("get", "put", "list"):
        print(__doc__, file=sys.stderr)
        return 2
    if not os.environ.get("STORAGE_EMULATOR_HOST"):
        print("gcs_object.py: STORAGE_EMULATOR_HOST is not set", file=sys.stderr)
        return 2
    verb, bucket_name, name = argv[1:]
    client = storage.Client(project="rp-test")
    bucket = client.bucket(bucket_name)
    if verb == "list":
        for blob in client.list_blobs(bucket_name, prefix=name):
            print(blob.name)
        return 0
    blob = bucket.blob(name)
    if verb == "put":
        blob.upload_from_string(sys.stdin.buffer.read(),
                                content_type="application/json")
        print("generation=%d" % blob.generation, file=sys.stderr)
        return 0
    try:
        data = blob.download_as_bytes()
    except exceptions.NotFound:
        print("gcs_object.py: gs://%s/%s does not exist" % (bucket_name, name),
              file=sys.stderr)
        return 3
    print("generation=%d" % blob.generation, file=sys.stderr)
    sys.stdout.buffer.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
