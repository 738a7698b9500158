"""A small FreeSWITCH conf tree like the one the fixtures were captured with (fixtures README
"Setup"), for tests that do not render the project's templates."""

from __future__ import annotations

import hashlib
from pathlib import Path

REALM = "sip.fixture.test"
USER = "kgfixture"
PASSWORD = "fixture-pass-123"
ACL_USER = "kgacl"
GATEWAY = "pcon_fixture"


def a1(user: str, password: str, realm: str = REALM) -> str:
    return hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()


def write_sample_conf(conf_dir: Path, controller_addr: str = "127.0.0.1:8084", *, tls: bool = True,
                      udp_tcp: bool = True) -> Path:
    conf_dir.mkdir(parents=True, exist_ok=True)
    (conf_dir / "sip_profile.xml").write_text(f"""<include>
  <profile name="kallglot">
    <gateways>
      <gateway name="{GATEWAY}">
        <param name="proxy" value="127.0.0.1:5999"/>
        <param name="register" value="false"/>
      </gateway>
    </gateways>
    <settings>
      <param name="context" value="kallglot"/>
      <param name="sip-ip" value="127.0.0.1"/>
      <param name="sip-port" value="$${{kallglot_sip_port}}"/>
      <param name="enable-tls" value="{'true' if tls else 'false'}"/>
      <param name="tls-only" value="{'false' if udp_tcp else 'true'}"/>
      <param name="tls-sip-port" value="$${{kallglot_tls_port}}"/>
      <param name="auth-calls" value="true"/>
      <param name="challenge-realm" value="{REALM}"/>
      <param name="inbound-late-negotiation" value="true"/>
      <param name="inbound-codec-prefs" value="OPUS,G722,PCMU,PCMA"/>
    </settings>
  </profile>
</include>
""")
    (conf_dir / "directory.xml").write_text(f"""<include>
  <domain name="{REALM}">
    <users>
      <user id="{USER}">
        <params><param name="a1-hash" value="{a1(USER, PASSWORD)}"/></params>
        <variables>
          <variable name="kallglot_org_id" value="org_fixture"/>
          <variable name="user_context" value="kallglot"/>
        </variables>
      </user>
      <user id="{ACL_USER}">
        <params>
          <param name="a1-hash" value="{a1(ACL_USER, PASSWORD)}"/>
          <param name="auth-acl" value="kgacl_list"/>
        </params>
        <variables><variable name="user_context" value="kallglot"/></variables>
      </user>
    </users>
  </domain>
</include>
""")
    (conf_dir / "acl.xml").write_text("""<include>
  <list name="kgacl_list" default="deny"><node type="allow" cidr="198.51.100.0/24"/></list>
</include>
""")
    (conf_dir / "dialplan.xml").write_text(f"""<include>
  <context name="kallglot">
    <extension name="session">
      <condition field="destination_number" expression="^sess_[0-9A-Za-z]+$">
        <action application="socket" data="{controller_addr} async full"/>
      </condition>
    </extension>
    <extension name="not_found">
      <condition field="destination_number" expression="^.*$">
        <action application="respond" data="404"/>
      </condition>
    </extension>
  </context>
</include>
""")
    return conf_dir
