#!/usr/bin/env python3
"""The promoflow quick start with the Python client.

    promoflow serve --listen 127.0.0.1:50051 &
    python examples/quickstart.py 127.0.0.1:50051

Creates environments dev -> qa -> {prod, prod-eu, prod-asia}, a product, a
flow built by edits, triggers a release and prints its events until it is
final. Safe to run twice: existing resources are reused.
"""

from __future__ import annotations

import sys

from promoflow import AlreadyExists, Client, InvalidArgument, edits, pb


def main(target: str) -> int:
    with Client(target) as pf:
        for name in ("dev", "qa", "prod", "prod-eu", "prod-asia"):
            try:
                pf.create_environment(name, kind="production" if name.startswith("prod") else "non_production")
            except AlreadyExists:
                pass
        try:
            pf.create_workflow("soak", wait=0.5)
            pf.create_product(
                "demo-trioapp",
                applications=[
                    ("dev", "trio-dev", "1.0.0"),
                    ("qa", "trio-qa"),
                    ("prod", "trio-prod"),
                    ("prod-eu", "trio-eu"),
                    ("prod-asia", "trio-asia"),
                ],
            )
            flow = pf.create_flow("parallel", trigger_environment="dev", steps=[{"environment": "qa", "depends_on": ["dev"]}])
            pf.edit_flow(
                "parallel",
                [edits.add_environments("qa", ["prod", "prod-eu", "prod-asia"], policy={"post_action": "soak"})],
                expected_version=flow.version,
            )
        except AlreadyExists:
            pass

        # Validation errors carry every field violation at once.
        try:
            pf.create_environment("Not A DNS Label")
        except InvalidArgument as e:
            for field, description in e.violations:
                print(f"rejected as expected: {field}: {description}")

        print(pf.render_flow("parallel"))
        release = pf.trigger_release("parallel", "demo-trioapp", initiator="quickstart.py")
        print(f"release {release.id}: {release.product} {release.version} via {release.flow}")
        for event in pf.watch_release(release.id):
            change = event.WhichOneof("change")
            if change == "environment":
                env = event.environment.environment
                print(f"  #{event.seq} {env.environment}: {pb.EnvironmentStatus.Name(env.status)}")
            elif change == "release":
                print(f"  #{event.seq} release: {pb.ReleaseStatus.Name(event.release.status)}")
        final = pf.get_release(release.id)
        print(f"release {final.id} is {pb.ReleaseStatus.Name(final.status)}")
        return 0 if final.status == pb.RELEASE_STATUS_SUCCEEDED else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051"))
