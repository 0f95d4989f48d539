// One cell of the client matrix with the openai Node SDK (its default retries on):
//   node matrix.mjs <cell>   with AEGIS_URL and AEGIS_KEY set; prints one JSON line.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: `${process.env.AEGIS_URL}/v1`, apiKey: process.env.AEGIS_KEY });
const cell = process.argv[2];
const messages = [{ role: "user", content: "Hello!" }];

async function run() {
  if (cell === "chat") {
    const { data, response } = await client.chat.completions
      .create({ model: "gpt-4o-mini", messages })
      .withResponse();
    return {
      text: data.choices[0].message.content,
      requestId: response.headers.get("x-request-id"),
      receiptId: response.headers.get("x-aegis-receipt-id"),
    };
  }
  if (cell === "stream") {
    const stream = await client.chat.completions.create({ model: "gpt-4o-mini", messages, stream: true });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
    return { text };
  }
  if (cell === "responses") {
    const response = await client.responses.create({ model: "gpt-4o-mini", input: "Hello!" });
    const again = await client.responses.retrieve(response.id);
    return { text: response.output_text, same: again.id === response.id };
  }
  if (cell === "embeddings") {
    const result = await client.embeddings.create({ model: "text-embedding-3-small", input: ["a", "b"] });
    return { count: result.data.length };
  }
  if (cell === "models") {
    const model = await client.models.retrieve("gpt-4o-mini");
    return { id: model.id };
  }
  if (cell === "budget") {
    try {
      await client.chat.completions.create({ model: "gpt-4o-mini", messages });
      return { error: null };
    } catch (error) {
      return {
        error: error.constructor.name,
        status: error.status,
        type: error.type,
        message: error.message,
        requestId: error.requestID ?? null,
      };
    }
  }
  throw new Error(`unknown cell ${cell}`);
}

console.log(JSON.stringify(await run()));
