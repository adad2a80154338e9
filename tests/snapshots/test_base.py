from leaklib.snapshots import canonical_bytes, sha256_hex


def test_hash_depends_on_content_only(table):
    assert sha256_hex(canonical_bytes(table)) == sha256_hex(
        canonical_bytes(table.set_index("p_a").reset_index()[table.columns])
    )
    assert sha256_hex(canonical_bytes(table)) != sha256_hex(canonical_bytes(table.head(10)))
