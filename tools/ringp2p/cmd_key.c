/* ringp2p keygen / ringp2p id: identities. */
#include <string.h>

#include "cli.h"

/* Prints a key's identity as one JSON object or as readable lines. */
static int print_identity(const char *cmdname, const ringp2p_privkey *key, const char *file,
                          bool ephemeral, bool json)
{
    ringp2p_peer_id id;
    char b58[RINGP2P_PEER_ID_STR_MAX], cid[RINGP2P_PEER_ID_STR_MAX];
    int r = ringp2p_peer_id_from_pubkey(ringp2p_privkey_public(key), &id);
    if (r < 0) return cli_fail(cmdname, "deriving the peer ID", r, NULL);
    if ((r = (int)ringp2p_peer_id_to_string(&id, b58, sizeof(b58))) < 0 ||
        (r = (int)ringp2p_peer_id_to_cid_string(&id, cid, sizeof(cid))) < 0)
        return cli_fail(cmdname, "printing the peer ID", r, NULL);
    const char *type = ringp2p_key_type_name(ringp2p_privkey_type(key));
    if (json) {
        printf("{\"peerId\":");
        json_str(stdout, b58);
        printf(",\"cid\":");
        json_str(stdout, cid);
        printf(",\"keyType\":");
        json_str(stdout, type);
        if (file != NULL) {
            printf(",\"file\":");
            json_str(stdout, file);
        }
        if (ephemeral) printf(",\"ephemeral\":true");
        printf("}\n");
    } else {
        printf("peer ID   %s\n", b58);
        printf("as CID    %s\n", cid);
        printf("key type  %s%s\n", type, ephemeral ? " (ephemeral: not saved)" : "");
        if (file != NULL) printf("key file  %s\n", file);
    }
    return fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
}

int cmd_keygen(const cli_cmd *cmd, cli_flag *flags, size_t nflags, char **args, size_t nargs)
{
    const char *type_name = cli_flag_get(flags, nflags, "type")->value;
    const char *out = cli_flag_get(flags, nflags, "out")->value;
    bool force = cli_flag_get(flags, nflags, "force")->set;
    bool json = cli_flag_get(flags, nflags, "json")->set;
    ringp2p_key_type type = RINGP2P_KEY_ED25519;

    if (out == NULL) {
        fprintf(stderr, "ringp2p keygen: --out FILE is required\nusage: ringp2p %s\n",
                cmd->synopsis);
        return CLI_USAGE;
    }
    if (type_name != NULL && ringp2p_key_type_parse(type_name, &type) < 0) {
        fprintf(stderr,
                "ringp2p keygen: unknown key type '%s' (use ed25519, secp256k1, ecdsa or rsa)\n",
                type_name);
        return CLI_USAGE;
    }
    ringp2p_privkey *key;
    int r = ringp2p_privkey_generate(type, &key);
    if (r < 0) return cli_fail("keygen", "generating the key", r, NULL);
    ringp2p_errinfo ei = { 0 };
    r = ringp2p_privkey_save(key, out, force ? RINGP2P_SAVE_FORCE : 0, &ei);
    if (r == RINGP2P_EEXIST) {
        fprintf(stderr, "ringp2p keygen: %s already exists; pass --force to replace it\n", out);
        ringp2p_privkey_free(key);
        return CLI_FAIL;
    }
    int rc = r < 0 ? cli_fail("keygen", "writing the key file", r, &ei)
                   : print_identity("keygen", key, out, false, json);
    ringp2p_privkey_free(key);
    return rc;
}

int cmd_id(const cli_cmd *cmd, cli_flag *flags, size_t nflags, char **args, size_t nargs)
{
    const char *file = cli_flag_get(flags, nflags, "key")->value;
    bool json = cli_flag_get(flags, nflags, "json")->set;
    ringp2p_privkey *key;
    ringp2p_errinfo ei = { 0 };
    int r;

    if (file != NULL) {
        r = ringp2p_privkey_load(file, &key, &ei);
        if (r < 0) return cli_fail("id", "reading the key file", r, &ei);
    } else {
        /* No identity given: show what a node started without --key would be. */
        r = ringp2p_privkey_generate(RINGP2P_KEY_ED25519, &key);
        if (r < 0) return cli_fail("id", "generating an ephemeral key", r, NULL);
    }
    int rc = print_identity("id", key, file, file == NULL, json);
    ringp2p_privkey_free(key);
    return rc;
}
