// The promoflow quick start with the TypeScript client.
//
//   promoflow serve --listen 127.0.0.1:50051 &
//   npm run build && node dist/examples/quickstart.js http://127.0.0.1:50051
//
// Creates environments dev -> qa -> {prod, prod-eu, prod-asia}, a product and
// a flow built by edits, triggers a release and prints its events until it
// is final. Safe to run twice: existing resources are reused.
import {
  AlreadyExistsError,
  createClient,
  EnvironmentKind,
  EnvironmentStatus,
  InvalidArgumentError,
  ReleaseStatus,
  watchRelease,
  type PromoflowClient,
} from "../src/index.js";

async function ignoreExisting(call: Promise<unknown>): Promise<void> {
  try {
    await call;
  } catch (e) {
    if (!(e instanceof AlreadyExistsError)) {
      throw e;
    }
  }
}

async function setUp(pf: PromoflowClient): Promise<void> {
  for (const name of ["dev", "qa", "prod", "prod-eu", "prod-asia"]) {
    const kind = name.startsWith("prod") ? EnvironmentKind.PRODUCTION : EnvironmentKind.NON_PRODUCTION;
    await ignoreExisting(pf.environments.createEnvironment({ environment: { name, kind } }));
  }
  await ignoreExisting(
    pf.workflows.createWorkflow({
      workflow: { name: "soak", kind: { case: "wait", value: { duration: { nanos: 500_000_000 } } } },
    }),
  );
  await ignoreExisting(
    pf.products.createProduct({
      product: {
        name: "demo-trioapp",
        applications: [
          { environment: "dev", name: "trio-dev", version: "1.0.0" },
          { environment: "qa", name: "trio-qa" },
          { environment: "prod", name: "trio-prod" },
          { environment: "prod-eu", name: "trio-eu" },
          { environment: "prod-asia", name: "trio-asia" },
        ],
      },
    }),
  );
  try {
    const { flow } = await pf.flows.createFlow({
      flow: { name: "parallel", triggerEnvironment: "dev", steps: [{ environment: "qa", dependsOn: ["dev"] }] },
    });
    await pf.flows.editFlow({
      name: "parallel",
      expectedVersion: flow?.version ?? 1n,
      edits: [
        {
          edit: {
            case: "addEnvironments",
            value: { after: "qa", environments: ["prod", "prod-eu", "prod-asia"], policy: { postAction: "soak" } },
          },
        },
      ],
    });
  } catch (e) {
    if (!(e instanceof AlreadyExistsError)) {
      throw e;
    }
  }
}

async function main(baseUrl: string): Promise<number> {
  const pf = createClient(baseUrl);
  await setUp(pf);

  // Validation errors carry every field violation at once.
  try {
    await pf.environments.createEnvironment({ environment: { name: "Not A DNS Label" } });
  } catch (e) {
    if (!(e instanceof InvalidArgumentError)) {
      throw e;
    }
    for (const v of e.violations) {
      console.log(`rejected as expected: ${v.field}: ${v.description}`);
    }
  }

  console.log((await pf.flows.renderFlow({ name: "parallel" })).text);
  const { release } = await pf.releases.triggerRelease({
    flow: "parallel",
    product: "demo-trioapp",
    initiator: "quickstart.ts",
  });
  if (release === undefined) {
    throw new Error("no release");
  }
  console.log(`release ${release.id}: ${release.product} ${release.version} via ${release.flow}`);
  for await (const event of watchRelease(pf, release.id)) {
    if (event.change.case === "environment") {
      const env = event.change.value.environment;
      console.log(`  #${event.seq} ${env?.environment}: ${EnvironmentStatus[env?.status ?? 0]}`);
    } else if (event.change.case === "release") {
      console.log(`  #${event.seq} release: ${ReleaseStatus[event.change.value.status]}`);
    }
  }
  const final = (await pf.releases.getRelease({ releaseId: release.id })).release;
  console.log(`release ${release.id} is ${ReleaseStatus[final?.status ?? 0]}`);
  return final?.status === ReleaseStatus.SUCCEEDED ? 0 : 1;
}

main(process.argv[2] ?? "http://127.0.0.1:50051").then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
