#!/bin/sh
# Entrypoint of the mosquitto container in docker-compose.yml: on first start, creates the
# dynamic-security JSON with Vigil's broker admin account (vigil-admin), then hands over to the
# image's own entrypoint. Vigil's services use that account to create every other account
# (their own service accounts, devices, gateways) at run time.
#
# The password is read from VIGIL_MQTT_ADMIN_PASSWORD only when the file is created: changing
# the variable later does not change the stored password (change it through the dynsec API, or
# remove the volume to start over).
set -eu

DYNSEC_FILE="${VIGIL_DYNSEC_FILE:-/mosquitto/data/dynamic-security.json}"
ADMIN_USER="vigil-admin"

if [ ! -s "$DYNSEC_FILE" ]; then
    if [ -z "${VIGIL_MQTT_ADMIN_PASSWORD:-}" ]; then
        echo "vigil: VIGIL_MQTT_ADMIN_PASSWORD is not set; it is needed to create $DYNSEC_FILE" >&2
        exit 1
    fi
    mkdir -p "$(dirname "$DYNSEC_FILE")"
    rm -f "$DYNSEC_FILE"  # an empty file left by an interrupted start
    # mosquitto_ctrl exits 0 even when it refuses, so check the result ourselves.
    mosquitto_ctrl dynsec init "$DYNSEC_FILE" "$ADMIN_USER" "$VIGIL_MQTT_ADMIN_PASSWORD" >/dev/null
    if [ ! -s "$DYNSEC_FILE" ]; then
        echo "vigil: mosquitto_ctrl did not create $DYNSEC_FILE" >&2
        exit 1
    fi
    chmod 600 "$DYNSEC_FILE"
    echo "vigil: created $DYNSEC_FILE with the broker admin account '$ADMIN_USER'"
fi

# The broker drops root for the mosquitto user, which must own its data.
if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1; then
    chown -R mosquitto:mosquitto "$(dirname "$DYNSEC_FILE")"
fi

if [ -x /docker-entrypoint.sh ]; then
    exec /docker-entrypoint.sh "$@"
fi
exec "$@"
