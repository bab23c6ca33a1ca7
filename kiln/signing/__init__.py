"""Signatures over provenance statements: a local ECDSA key (``keys``) or Sigstore (``keyless``).

``wheels`` signs wheels in a wheelhouse from their build records, and gives the
after-build step that ``kiln build --sign-key`` runs.
"""
